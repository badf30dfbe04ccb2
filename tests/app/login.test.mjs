// Unit tests of the App's login code against the spec's vectors (section 2).
// Run by tests/app/test_js.py as `node --test`.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  loginDigest, myAppsLogin, passwordLogin, sessionKey, sha256Hex, websocketUrl, ZERO_GUID,
} from "../../provd/app/static/login.js";

const C = "0123456789abcdef";

test("digest without info leaves the info part out", async () => {
  assert.equal(
    await loginDigest({ app: "pbxadminapi", domain: "", sip: "", guid: "", dn: "" }, C, "pwd"),
    "a205299ed2ef2786c311e0be1b14db343f2cadd906a6ae7b564eee34bda5e9a1",
  );
});

test("digest with an empty info object", async () => {
  assert.equal(
    await loginDigest({ app: "pbxadminapi", info: {} }, C, "pwd"),
    "57b23fe824b9222a7ac879597cb509bcdc865a1bfeb057d9d12118cef0c3ba34",
  );
});

test("digest with info keeps non-ASCII and key order", async () => {
  assert.equal(
    await loginDigest({ app: "pbxadminapi", info: { cn: "Test User" } }, C, "pwd"),
    "96db3c3f657230c2b68194becc6d2a77f05de9f79f01fc81e9ca0fb196b10d9d",
  );
  const info = {
    appobj: "users",
    apps: [{ name: "users" }, { name: "profile" }],
    appurl: "https://1.2.3.4/example.com/usersapp/innovaphone-users",
    unlicensed: true,
  };
  const identity = {
    app: "innovaphone-users", domain: "example.com", sip: "administrator",
    guid: "0123456789abcdef0123456789abcdef", dn: "Administrator User", info,
  };
  assert.equal(
    await loginDigest(identity, C, "pwd"),
    "ef1b811ffaa8f9255c39c653d8fb26b4687b2d8c4d9ac91b4821bff6bae3ff44",
  );
});

test("session key vector", async () => {
  assert.equal(
    await sessionKey(C, "pwd"),
    "d58c77eae0c1c1f37a9f545e207643c926ad9ea4932016a83a4a01029de37760",
  );
});

test("sha256 hashes the UTF-8 bytes", async () => {
  // python3 -c "import hashlib; print(hashlib.sha256('Päss'.encode()).hexdigest())"
  assert.equal(await sha256Hex("P\u00e4ss"), "07855858efb13558dcac04afce1e5e83f3452daf39896c6a5bd3a8c0e2783f71");
});

test("password login: identity of the standalone App, digest over it", async () => {
  const { message, key } = await passwordLogin("provd-admin", C, "pwd");
  assert.equal(message.mt, "AppLogin");
  assert.equal(message.sip, "provd-admin");
  assert.equal(message.guid, ZERO_GUID);
  assert.equal(message.pbxObj, "provd-admin");
  assert.equal(
    message.digest,
    await sha256Hex(`provd-admin::provd-admin:${ZERO_GUID}:Admin:${C}:pwd`),
  );
  assert.equal(key, "d58c77eae0c1c1f37a9f545e207643c926ad9ea4932016a83a4a01029de37760");
});

test("myApps login is taken only for our own app", () => {
  const obj = {
    mt: "Login", app: "provd-admin", domain: "example.com", sip: "admin", guid: "g", dn: "A",
    info: { appobj: "provd" }, digest: "d", pbxObj: "provd-admin", key: "k",
  };
  const login = myAppsLogin("provd-admin", obj);
  assert.deepEqual(login.message, {
    mt: "AppLogin", app: "provd-admin", domain: "example.com", sip: "admin", guid: "g",
    dn: "A", digest: "d", pbxObj: "provd-admin", info: { appobj: "provd" },
  });
  assert.equal(login.key, "k");
  assert.equal(myAppsLogin("provd-admin", { ...obj, pbxObj: "other" }), null);
  assert.equal(myAppsLogin("provd-admin", { ...obj, mt: "getLogin" }), null);
});

test("websocket URL is the page's base URL", () => {
  assert.equal(websocketUrl("http://h:8090/example.com/provd/provd-admin.htm?x#y"),
    "ws://h:8090/example.com/provd/");
  assert.equal(websocketUrl("https://h/p/provd-admin.htm"), "wss://h/p/");
});
