// Twofold's one script: runs navigator.credentials for security keys and
// passkeys, then submits the form it sits in. No framework, no other
// page needs JavaScript.
(function () {
  "use strict";
  function enc(buf) {
    var s = "", bytes = new Uint8Array(buf);
    for (var i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function dec(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }
  function prepare(kind, options) {
    var pk = options.publicKey;
    pk.challenge = dec(pk.challenge);
    if (kind === "create") {
      pk.user.id = dec(pk.user.id);
      (pk.excludeCredentials || []).forEach(function (c) { c.id = dec(c.id); });
    } else {
      (pk.allowCredentials || []).forEach(function (c) { c.id = dec(c.id); });
    }
    return { publicKey: pk };
  }
  function encode(cred) {
    var r = cred.response, out = {
      id: cred.id, rawId: enc(cred.rawId), type: cred.type,
      authenticatorAttachment: cred.authenticatorAttachment || undefined,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
      response: { clientDataJSON: enc(r.clientDataJSON) }
    };
    if (r.attestationObject) {
      out.response.attestationObject = enc(r.attestationObject);
      if (r.getTransports) out.response.transports = r.getTransports();
    } else {
      out.response.authenticatorData = enc(r.authenticatorData);
      out.response.signature = enc(r.signature);
      if (r.userHandle) out.response.userHandle = enc(r.userHandle);
    }
    return JSON.stringify(out);
  }
  document.querySelectorAll("[data-webauthn]").forEach(function (button) {
    button.addEventListener("click", function (event) {
      event.preventDefault();
      var form = button.closest("form"), kind = button.getAttribute("data-webauthn");
      var status = form.querySelector(".webauthn-status");
      if (!window.PublicKeyCredential) {
        if (status) status.textContent = "This browser does not support security keys.";
        return;
      }
      var options = prepare(kind, JSON.parse(button.getAttribute("data-options")));
      var call = kind === "create" ? navigator.credentials.create(options) : navigator.credentials.get(options);
      if (status) status.textContent = "Waiting for your security key…";
      call.then(function (cred) {
        form.querySelector("input[name=credential]").value = encode(cred);
        form.submit();
      }).catch(function (err) {
        if (status) status.textContent = "The security key did not answer (" + err.name + "). Try again.";
      });
    });
  });
})();
