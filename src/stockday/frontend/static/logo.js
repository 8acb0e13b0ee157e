// Stock page: while the logo is being processed, ask for its state and show it when ready,
// without reloading the page. Polling (not server-sent events) keeps every replica stateless
// and works through any proxy; after the first seconds the pauses grow, so a stuck job costs
// little.
(function () {
  "use strict";

  var placeholder = document.getElementById("stock-logo");
  if (!placeholder) {
    return;
  }
  var url = placeholder.getAttribute("data-logo-state-url");
  var note = document.getElementById("logo-note");
  var delay = 1000;
  var maxDelay = 10000;
  var startedAt = Date.now();
  var giveUpAt = startedAt + 10 * 60 * 1000;

  function say(text, failed) {
    if (note) {
      note.textContent = text;
      note.className = "logo-note" + (failed ? " logo-note-failed" : "");
    }
  }

  function showLogo(src) {
    var image = document.createElement("img");
    image.className = "logo logo-large";
    image.alt = placeholder.getAttribute("data-logo-alt") || "";
    image.id = "stock-logo";
    image.addEventListener("load", function () {
      placeholder.replaceWith(image);
      say("Logo ready.", false);
    });
    image.src = src;
  }

  // The server answers only sources it allows (and the page's CSP holds images to them too).
  function usable(src) {
    return typeof src === "string" && /^(\/(?!\/)|https?:\/\/)/.test(src);
  }

  function handle(body) {
    if (!body) {
      return false;
    }
    if (body.state === "ready" && usable(body.src)) {
      showLogo(body.src);
      return true;
    }
    if (body.state === "failed") {
      placeholder.className = placeholder.className.replace("logo-pending", "logo-failed");
      say("Logo failed" + (body.error ? ": " + body.error : "."), true);
      return true;
    }
    return body.state !== "pending"; // none: the logo was removed meanwhile
  }

  function poll() {
    fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (response) {
        return response.ok ? response.json() : null;
      })
      .catch(function () {
        return null; // a failed poll is retried; the page stays as it is
      })
      .then(function (body) {
        if (handle(body)) {
          return;
        }
        if (Date.now() > giveUpAt) {
          say("The logo is taking long. Reload the page later to see it.", false);
          return;
        }
        if (Date.now() - startedAt > 20000) {
          delay = Math.min(maxDelay, Math.round(delay * 1.5)); // usual jobs take a second or two
        }
        window.setTimeout(poll, delay);
      });
  }

  window.setTimeout(poll, delay);
})();
