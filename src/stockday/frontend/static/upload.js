// Add-stock form: upload the logo as soon as it is picked, with a preview and a progress bar,
// so submitting the form is instant. Without this script the browser sends the file with the
// form and the server uploads it.
(function () {
  "use strict";

  var form = document.getElementById("stock-form");
  if (!form) {
    return;
  }
  var fileInput = document.getElementById("file");
  var uploadField = document.getElementById("upload_id");
  var csrfField = document.getElementById("csrf_token");
  var statusText = document.getElementById("file-status");
  var preview = document.getElementById("file-preview");
  var progress = document.getElementById("file-progress");
  var submitButton = document.getElementById("submit");
  var maxBytes = parseInt(fileInput.getAttribute("data-max-bytes") || "0", 10);
  var fileFieldName = fileInput.name;
  var current = null; // the upload in flight, if any
  var uploading = false;
  var previewUrl = null;

  function setStatus(text, kind) {
    statusText.textContent = text;
    statusText.className = "upload-status" + (kind ? " upload-" + kind : "");
  }

  function setUploading(value) {
    uploading = value;
    submitButton.disabled = value;
    form.setAttribute("aria-busy", value ? "true" : "false");
  }

  function setProgress(percent, state) {
    progress.value = percent;
    progress.setAttribute("data-state", state);
  }

  function clearPreview() {
    var image = document.getElementById("file-preview-image");
    if (image) {
      image.remove();
    }
    if (previewUrl) {
      URL.revokeObjectURL(previewUrl);
      previewUrl = null;
    }
    preview.hidden = true;
  }

  // The picked file shown at once, from memory: nothing waits for the server.
  function showPreview(file) {
    clearPreview();
    previewUrl = URL.createObjectURL(file);
    var image = document.createElement("img");
    image.id = "file-preview-image";
    image.className = "upload-preview-image";
    image.alt = "Preview of the chosen logo";
    image.addEventListener("error", function () {
      image.remove(); // not an image the browser can show; the server's answer will say why
    });
    image.src = previewUrl;
    preview.insertBefore(image, progress);
    setProgress(0, "uploading");
    preview.hidden = false;
  }

  // The server answers {"detail": "sentence"} or FastAPI's list of {"msg": ...}.
  function errorText(xhr) {
    var fallback = "Upload failed (" + (xhr.status || "no answer") + "). Try again.";
    var body;
    try {
      body = JSON.parse(xhr.responseText);
    } catch (ignored) {
      return fallback;
    }
    if (!body || body.detail === undefined || body.detail === null) {
      return fallback;
    }
    if (typeof body.detail === "string") {
      return body.detail;
    }
    if (Array.isArray(body.detail)) {
      return body.detail.map(function (item) {
        return item && item.msg ? String(item.msg) : String(item);
      }).join("; ");
    }
    return fallback;
  }

  function forgetUpload() {
    uploadField.value = "";
    // Named again, so a form submitted without a finished upload still carries the file.
    fileInput.name = fileFieldName;
  }

  function failed(text) {
    fileInput.value = "";
    clearPreview();
    setStatus(text, "error");
  }

  function upload(file) {
    if (current) {
      current.abort(); // a newer pick replaces an upload still in flight
    }
    forgetUpload();
    if (maxBytes && file.size > maxBytes) {
      failed("That file is too large: the limit is " + (maxBytes / 1048576).toFixed(1) + " MB.");
      return;
    }
    showPreview(file);
    var data = new FormData();
    data.append("file", file, file.name);
    var xhr = new XMLHttpRequest();
    current = xhr;
    xhr.open("POST", "/uploads");
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("X-CSRF-Token", csrfField.value);
    var announced = 0; // the status is a live region: say every quarter, not every percent
    xhr.upload.addEventListener("progress", function (event) {
      if (event.lengthComputable && xhr === current) {
        var percent = Math.round((100 * event.loaded) / event.total);
        setProgress(percent, "uploading");
        if (percent - announced >= 25) {
          announced = percent;
          setStatus("uploading… " + percent + "%", "busy");
        }
      }
    });
    xhr.addEventListener("load", function () {
      if (xhr !== current) {
        return;
      }
      current = null;
      setUploading(false);
      var body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch (ignored) {
        body = null;
      }
      if (xhr.status === 201 && body && typeof body.upload_id === "string") {
        uploadField.value = body.upload_id;
        // The file is on the server already: do not send it again with the form.
        fileInput.removeAttribute("name");
        setProgress(100, "done");
        setStatus("uploaded", "ok");
      } else {
        failed(errorText(xhr));
      }
    });
    xhr.addEventListener("error", function () {
      if (xhr !== current) {
        return;
      }
      current = null;
      setUploading(false);
      failed("Upload failed: the server could not be reached. Try again.");
    });
    xhr.addEventListener("abort", function () {
      if (xhr === current) {
        current = null;
        setUploading(false);
      }
    });
    setUploading(true);
    setStatus("uploading…", "busy");
    xhr.send(data);
  }

  fileInput.addEventListener("change", function () {
    if (fileInput.files && fileInput.files.length > 0) {
      upload(fileInput.files[0]);
    } else {
      if (current) {
        current.abort();
      }
      forgetUpload();
      clearPreview();
      setStatus("", "");
    }
  });

  form.addEventListener("submit", function (event) {
    if (uploading) {
      event.preventDefault(); // pressing Enter must not submit a half-uploaded logo
      setStatus("Please wait until the logo is uploaded.", "busy");
    }
  });
})();
