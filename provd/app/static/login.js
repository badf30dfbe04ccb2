// provd admin App: AppWebsocket client and login (innovaphone spec section 2).
// Facts used (from the innovaphone SDK's web1/appwebsocket Connection.js and the spec):
// - login: AppChallenge -> AppChallengeResult{challenge} -> AppLogin -> AppLoginResult{ok}
// - digest = sha256hex(app:domain:sip:guid:dn[:info]:challenge:password), info as compact
//   JSON in key order; session key = sha256hex("innovaphoneAppSessionKey:" + challenge + ":" + pw)
// - inside myApps the App posts {"mt":"getLogin","app":app,"challenge":c} to window.parent
//   and myApps answers with {"mt":"Login", app, domain, sip, guid, dn, info, digest, pbxObj,
//   key}; the App takes it when pbxObj equals its own app name, and sends AppLogin with
//   pbxObj set to its app name. Opened on its own, it logs in with a password.
// - clients reconnect with a back-off doubling up to 32 s.
// This file is an ES module usable both in the browser and under `node --test`.

const enc = new TextEncoder();

/** Lowercase hex SHA-256 of the UTF-8 bytes of `text` (WebCrypto). */
export async function sha256Hex(text) {
  const digest = await globalThis.crypto.subtle.digest("SHA-256", enc.encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** `info` as the digest wants it: compact JSON, keys in received order, "/" not escaped. */
export function compactInfo(info) {
  return JSON.stringify(info);
}

/** The AppLogin digest for `identity` ({app, domain, sip, guid, dn, info?}). */
export function loginDigest(identity, challenge, password) {
  const parts = [identity.app, identity.domain || "", identity.sip || "", identity.guid || "", identity.dn || ""];
  if (identity.info !== undefined && identity.info !== null) parts.push(compactInfo(identity.info));
  parts.push(challenge, password);
  return sha256Hex(parts.join(":"));
}

/** The session key of a connection logged in with `password` against `challenge`. */
export function sessionKey(challenge, password) {
  return sha256Hex(`innovaphoneAppSessionKey:${challenge}:${password}`);
}

export const ZERO_GUID = "00000000000000000000000000000000";

/** The AppLogin (and session key) of a password login, as the App sends it standalone. */
export async function passwordLogin(app, challenge, password) {
  const identity = { app, domain: "", sip: app, guid: ZERO_GUID, dn: "Admin" };
  const digest = await loginDigest(identity, challenge, password);
  return {
    message: { mt: "AppLogin", ...identity, digest, pbxObj: app },
    key: await sessionKey(challenge, password),
  };
}

/** The AppLogin for a login myApps handed over (`obj` is its "Login" message), or null. */
export function myAppsLogin(app, obj) {
  if (!obj || obj.mt !== "Login" || obj.pbxObj !== app || typeof obj.digest !== "string") return null;
  const message = {
    mt: "AppLogin", app: obj.app, domain: obj.domain || "", sip: obj.sip || "",
    guid: obj.guid || "", dn: obj.dn || "", digest: obj.digest, pbxObj: app,
  };
  if (obj.info !== undefined) message.info = obj.info;
  return { message, key: obj.key || null, user: obj.sip || "", dn: obj.dn || "" };
}

/** The websocket URL next to the App's page (same base URL, ws/wss). */
export function websocketUrl(pageUrl) {
  const url = new URL(".", pageUrl);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.hash = "";
  url.search = "";
  return url.href;
}

export const TIMEOUT_MIN = 1000;
export const TIMEOUT_MAX = 32000;

/**
 * One AppWebsocket connection with login, requests by `src`, subscriptions and reconnect.
 * options: { password: async () => string  (standalone: ask the user),
 *            inFrame: bool, onstate: (state, detail) => void, onconnected: () => void }
 */
export class AppConnection {
  constructor(url, app, options) {
    this.url = url;
    this.app = app;
    this.options = options;
    this.ws = null;
    this.state = "connecting";
    this.pending = new Map();
    this.handlers = new Map();
    this.unique = 0;
    this.timeout = TIMEOUT_MIN;
    this.user = "";
    this.key = null;
    this.challenge = null;
    this.onWindowMessage = (e) => this.onPostMessage(e);
    if (options.inFrame) window.addEventListener("message", this.onWindowMessage);
  }

  setState(state, detail = "") {
    this.state = state;
    if (this.options.onstate) this.options.onstate(state, detail);
  }

  open() {
    this.setState("connecting");
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => this.send({ mt: "AppChallenge" });
    ws.onmessage = (m) => this.onMessage(m.data);
    ws.onclose = () => this.onClose();
  }

  onClose() {
    this.ws = null;
    for (const [, p] of this.pending) p.reject(new Error("connection lost"));
    this.pending.clear();
    this.handlers.clear(); // subscriptions are made again after the next login
    if (this.state === "refused") return;
    if (this.retryNow) {
      this.retryNow = false;
      this.open();
      return;
    }
    const wait = this.timeout;
    this.timeout = Math.min(this.timeout * 2, TIMEOUT_MAX);
    this.setState("reconnecting", `again in ${Math.round(wait / 1000)} s`);
    setTimeout(() => this.open(), wait);
  }

  send(obj) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(obj));
  }

  async onMessage(text) {
    let obj;
    try { obj = JSON.parse(text); } catch { return; }
    if (!obj || typeof obj.mt !== "string") return;
    if (obj.mt === "AppChallengeResult") return this.onChallenge(obj.challenge);
    if (obj.mt === "AppLoginResult") {
      if (obj.ok) {
        this.timeout = TIMEOUT_MIN;
        this.setState("connected", this.user);
        if (this.options.onconnected) this.options.onconnected();
      } else if (this.options.inFrame) {
        this.setState("refused", "myApps' login was refused");
        if (this.ws) this.ws.close();
      } else {
        this.setState("retry", "wrong password");
        this.retryNow = true; // the server closes; ask again on a fresh connection
        if (this.ws) this.ws.close();
      }
      return;
    }
    if (obj.src !== undefined) {
      const waiting = this.pending.get(obj.src);
      if (waiting && obj.mt === waiting.mt + "Result") {
        this.pending.delete(obj.src);
        waiting.resolve(obj);
        return;
      }
      const handler = this.handlers.get(obj.src);
      if (handler) handler(obj);
    }
  }

  async onChallenge(challenge) {
    this.challenge = challenge;
    if (this.options.inFrame) {
      this.setState("login", "asking myApps");
      window.parent.postMessage(JSON.stringify({ mt: "getLogin", app: this.app, challenge }), "*");
      return;
    }
    this.setState("login", "password");
    const password = await this.options.password();
    const { message, key } = await passwordLogin(this.app, challenge, password);
    this.key = key;
    this.user = "Admin";
    this.send(message);
  }

  onPostMessage(e) {
    if (typeof e.data !== "string") return;
    let obj;
    try { obj = JSON.parse(e.data); } catch { return; }
    const login = myAppsLogin(this.app, obj);
    if (!login) return;
    this.key = login.key;
    this.user = login.dn || login.user;
    this.send(login.message);
  }

  /** Send admin request `mt` with `fields`; resolves with its `<mt>Result`. */
  request(mt, fields = {}, onIndication = null) {
    const src = `r${++this.unique}`;
    if (onIndication) this.handlers.set(src, onIndication);
    return new Promise((resolve, reject) => {
      this.pending.set(src, { mt, resolve, reject });
      this.send({ api: "ProvdAdmin", mt, src, ...fields });
    });
  }
}
