/* Progressive enhancement for the catalog pages: every page works without this file. */
(function () {
  "use strict";

  // Copy buttons: <button data-copy="#selector">.
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var text = document.querySelector(button.dataset.copy).textContent.replace(/^POST /, "");
      navigator.clipboard.writeText(text).then(function () {
        button.textContent = "Copied";
        setTimeout(function () { button.textContent = "Copy"; }, 1500);
      });
    });
  });

  // Bundle upload with a progress bar (falls back to a plain form post).
  var form = document.getElementById("upload-form");
  if (form && window.XMLHttpRequest && window.FormData) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var progress = document.getElementById("upload-progress");
      var status = document.getElementById("upload-status");
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.addEventListener("progress", function (e) {
        if (e.lengthComputable) {
          progress.hidden = false;
          progress.value = Math.round((e.loaded / e.total) * 100);
          status.textContent = "Uploading… " + progress.value + "%";
        }
      });
      xhr.addEventListener("load", function () {
        var body = {};
        try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
        if (xhr.status >= 200 && xhr.status < 300) {
          progress.value = 100;
          status.textContent = body.message + " Reloading…";
          window.location.reload();
        } else {
          status.textContent = (body.error && body.error.message) || ("Upload failed (" + xhr.status + ").");
          status.className = "error";
        }
      });
      xhr.addEventListener("error", function () { status.textContent = "Upload failed: network error."; });
      xhr.send(new FormData(form));
    });
  }

  // Live build log over a WebSocket; where WebSockets are unavailable, reload until done.
  var log = document.getElementById("build-log");
  var finished = false;
  function pollByReloading() {
    if (!finished) { setTimeout(function () { window.location.reload(); }, 2000); }
  }
  if (log && log.dataset.status === "in-progress" && !window.WebSocket) { pollByReloading(); }
  if (log && log.dataset.status === "in-progress" && window.WebSocket) {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + window.location.host + log.dataset.ws);
    socket.addEventListener("error", pollByReloading);
    socket.addEventListener("close", pollByReloading);
    socket.addEventListener("message", function (event) {
      var data = JSON.parse(event.data);
      if (data.snapshot) { log.textContent = data.text; } else { log.textContent += data.text; }
      log.scrollTop = log.scrollHeight;
      var badge = document.getElementById("build-status");
      badge.textContent = data.status;
      badge.className = "badge status-" + data.status;
      if (data.status !== "in-progress") {
        finished = true;
        socket.close();
        if (data.status === "succeeded") { document.getElementById("build-next").hidden = false; }
      }
    });
  }
})();

/* The "try it" console: posts to the page's own endpoint, which calls with the user's key. */
(function () {
  "use strict";
  var form = document.getElementById("console");
  if (!form) { return; }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var output = document.getElementById("console-output");
    var kind = form.querySelector("input[name=console-type]:checked").value;
    output.hidden = false;
    output.textContent = "Running…";
    fetch(form.dataset.url, {
      method: "POST",
      headers: {"Content-Type": "application/json",
                "X-CSRFToken": form.querySelector("input[name=csrfmiddlewaretoken]").value},
      body: JSON.stringify({input: document.getElementById("console-input").value, content_type: kind})
    }).then(function (response) { return response.json(); }).then(function (body) {
      output.textContent = JSON.stringify(body, null, 2);
    }).catch(function (error) { output.textContent = "Failed: " + error; });
  });
})();
