from provd.cli.main import entry

entry()
