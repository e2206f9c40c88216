// rollcall web app: small progressive enhancements; every page works without them.
"use strict";

function $(sel, root) { return (root || document).querySelector(sel); }

// Forms that delete something ask first.
document.addEventListener("submit", function (ev) {
  var form = ev.target;
  if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    ev.preventDefault();
  }
});

// Meeting page: a click on a cell or a student fills the correction form.
function setupMatrix() {
  var table = $("#matrix-table");
  var form = $("#correction-form");
  if (!table || !form) return;
  table.addEventListener("click", function (ev) {
    var button = ev.target.closest("button[data-student]");
    if (!button) return;
    $("#c-student").value = button.dataset.student;
    var minute = button.dataset.minute;
    $("#c-from").value = minute === undefined ? "" : minute;
    $("#c-to").value = minute === undefined ? "" : minute;
    // A needs-review minute has no suggested answer: the instructor picks one.
    var present = button.dataset.present;
    $("#c-present").checked = present === "1";
    $("#c-absent").checked = present === "0";
    form.scrollIntoView({ block: "nearest" });
    $("#c-reason").focus();
  });
}

// Student page: drop photos on the upload form.
function setupDropzone() {
  var zone = $(".dropzone");
  if (!zone) return;
  var input = $("input[type=file]", zone);
  ["dragenter", "dragover"].forEach(function (name) {
    zone.addEventListener(name, function (ev) { ev.preventDefault(); zone.classList.add("over"); });
  });
  zone.addEventListener("dragleave", function () { zone.classList.remove("over"); });
  zone.addEventListener("drop", function (ev) {
    ev.preventDefault();
    zone.classList.remove("over");
    input.files = ev.dataTransfer.files;
    zone.requestSubmit();
  });
}

// Student page: take a photo with the webcam and enrol it.
function setupWebcam() {
  var box = $("#webcam");
  if (!box) return;
  var video = $("#webcam-video"), start = $("#webcam-start"), capture = $("#webcam-capture");
  var canvas = $("#webcam-canvas"), list = $("#webcam-verdicts");
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    start.disabled = true;
    list.textContent = "This browser cannot use a webcam here (it needs HTTPS or localhost).";
    return;
  }
  start.addEventListener("click", function () {
    navigator.mediaDevices.getUserMedia({ video: true, audio: false }).then(function (stream) {
      video.srcObject = stream;
      capture.disabled = false;
      capture.focus();
    }).catch(function (err) {
      list.textContent = "The camera could not be started: " + err.message;
    });
  });
  capture.addEventListener("click", function () {
    canvas.width = video.videoWidth || 640;
    canvas.height = video.videoHeight || 480;
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    capture.disabled = true;
    canvas.toBlob(function (blob) {
      var data = new FormData();
      data.append("photos", blob, "webcam-" + Date.now() + ".jpg");
      fetch(box.dataset.upload, {
        method: "POST",
        body: data,
        headers: { "X-CSRF-Token": box.dataset.csrf, "Accept": "application/json" },
        credentials: "same-origin",
      }).then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      }).then(function (result) {
        result.checks.forEach(function (c) {
          var li = document.createElement("li");
          li.className = "verdict " + (c.accepted ? "accepted" : "refused");
          li.textContent = c.filename + ": " + (c.accepted ? "accepted" : "refused — " + c.problem);
          list.appendChild(li);
        });
      }).catch(function (err) {
        var li = document.createElement("li");
        li.className = "verdict refused";
        li.textContent = "Upload failed: " + err.message;
        list.appendChild(li);
      }).finally(function () { capture.disabled = false; });
    }, "image/jpeg", 0.92);
  });
}

// Recordings page: show the upload's progress.
function setupUpload() {
  var form = $("#upload-form");
  if (!form || !window.XMLHttpRequest) return;
  var bar = $("#upload-progress");
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("Accept", "application/json");
    bar.hidden = false;
    xhr.upload.addEventListener("progress", function (p) {
      if (p.lengthComputable) bar.value = Math.round((100 * p.loaded) / p.total);
    });
    xhr.addEventListener("load", function () {
      if (xhr.status === 200) {
        window.location.assign(JSON.parse(xhr.responseText).url);
      } else {
        document.open(); document.write(xhr.responseText); document.close();
      }
    });
    xhr.send(new FormData(form));
  });
}

// Job page: refresh while the job runs.
function setupRefresh() {
  var el = $("#job-refresh");
  if (el) window.setTimeout(function () { window.location.reload(); }, 1000 * Number(el.dataset.refresh));
}

document.addEventListener("DOMContentLoaded", function () {
  setupMatrix();
  setupDropzone();
  setupWebcam();
  setupUpload();
  setupRefresh();
});
