"""The daemon's actors: thin trio shells around the protocol cores.

- :mod:`.daemon`: the top supervisor (store, listeners, signals, systemd);
- :mod:`.appservice`: one session per AppWebsocket connection (PBX App object, Users service);
- :mod:`.pbx`: what a PBX connection feeds the rest: the Devices service URL, service logins;
- :mod:`.phone`: one Sysclient actor per MAC;
- :mod:`.supervisor`: starts, restarts and stops the phone actors;
- :mod:`.state`: the in-memory view every actor shares (phones, Devices URL, outcomes).
"""
