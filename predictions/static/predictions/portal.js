// The portal's own script: uploads with per-file progress, heat-map controls, keyboard reading.
// Rows and their live updates are rendered by the server (Django templates, polled with htmx);
// this file builds no result markup. Plain JavaScript, nothing loaded from outside the site.
"use strict";

(function () {
  // One file at a time: each shows its own progress, and the site is never flooded.
  const MAX_PARALLEL_UPLOADS = 1;

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([key, value]) => {
      if (key === "text") node.textContent = value;
      else if (key === "className") node.className = value;
      else node.setAttribute(key, value);
    });
    (children || []).forEach((child) => node.append(child));
    return node;
  }

  function formatSeconds(seconds) {
    return `${Number(seconds).toFixed(1)} s`;
  }

  // Insert HTML the site rendered, and let htmx start any polling it asks for.
  function insertServerHtml(html, place) {
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    const node = template.content.firstElementChild;
    place(node);
    if (window.htmx) window.htmx.process(node);
    return node;
  }

  // ---- Uploads -----------------------------------------------------------------------

  function setUpUpload() {
    const form = document.getElementById("upload-form");
    if (!form) return;
    const input = document.getElementById("upload-files");
    const dropzone = document.getElementById("dropzone");
    const list = document.getElementById("upload-list");
    const csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
    const waiting = [];
    let active = 0;

    function next() {
      while (active < MAX_PARALLEL_UPLOADS && waiting.length) {
        active += 1;
        send(waiting.shift()).finally(() => { active -= 1; next(); });
      }
    }

    function add(files, allowDuplicate) {
      Array.from(files).forEach((file) => {
        const progress = el("progress", { max: "100", value: "0", "aria-label": `Upload progress of ${file.name}` });
        const state = el("span", { className: "upload-state", text: "waiting" });
        const item = el("li", { className: "upload-item" }, [
          el("span", { className: "file-name", text: file.name }), progress, state,
        ]);
        list.append(item);
        waiting.push({ file, item, progress, state, allowDuplicate: Boolean(allowDuplicate) });
      });
      next();
    }

    function send(upload) {
      return new Promise((resolve) => {
        const xhr = new XMLHttpRequest();
        const body = new FormData();
        body.append("image", upload.file, upload.file.name);
        if (upload.allowDuplicate) body.append("allow_duplicate", "on");
        xhr.open("POST", form.action);
        xhr.setRequestHeader("X-CSRFToken", csrf);
        xhr.setRequestHeader("Accept", "application/json");
        upload.state.textContent = "uploading";
        xhr.upload.addEventListener("progress", (event) => {
          if (event.lengthComputable) upload.progress.value = Math.round((100 * event.loaded) / event.total);
        });
        xhr.addEventListener("load", () => { finished(upload, xhr); resolve(); });
        xhr.addEventListener("error", () => { rejected(upload, ["The upload did not reach the site; check the connection and try again."]); resolve(); });
        xhr.send(body);
      });
    }

    function finished(upload, xhr) {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (error) { body = {}; }
      if (xhr.status === 202 && body.job) {
        addJobRow(body.row_html);
        insertServerHtml(body.upload_html, (node) => upload.item.replaceWith(node));
      } else if (xhr.status === 409 && body.duplicate_of) {
        duplicate(upload, body);
      } else {
        rejected(upload, body.errors || [`The upload failed (HTTP ${xhr.status}).`]);
      }
    }

    function duplicate(upload, body) {
      rejected(upload, body.errors);
      const again = el("button", { type: "button", className: "link-button", text: `Upload ${upload.file.name} anyway` });
      again.addEventListener("click", () => { upload.item.remove(); add([upload.file], true); });
      upload.item.append(el("p", { className: "duplicate" }, [
        el("a", { href: body.duplicate_of.url, text: "Open the earlier result" }), " or ", again,
      ]));
    }

    function rejected(upload, errors) {
      upload.item.classList.add("rejected");
      upload.state.textContent = "rejected";
      upload.progress.value = 0;
      const messages = el("ul", { className: "errors", role: "alert" }, errors.map((message) => el("li", { text: message })));
      upload.item.append(messages);
    }

    input.addEventListener("change", () => { add(input.files); input.value = ""; });
    ["dragenter", "dragover"].forEach((name) => dropzone.addEventListener(name, (event) => {
      event.preventDefault();
      dropzone.classList.add("dragging");
    }));
    ["dragleave", "drop"].forEach((name) => dropzone.addEventListener(name, () => dropzone.classList.remove("dragging")));
    dropzone.addEventListener("drop", (event) => {
      event.preventDefault();
      if (event.dataTransfer && event.dataTransfer.files.length) add(event.dataTransfer.files);
    });
  }

  function addJobRow(html) {
    const table = document.getElementById("jobs-table");
    if (!table || !html) return;
    table.hidden = false;
    const empty = document.getElementById("no-jobs");
    if (empty) empty.remove();
    insertServerHtml(html, (node) => table.tBodies[0].prepend(node));
  }

  // Between server updates, count the seconds of unfinished jobs up.
  function tickElapsed() {
    document.querySelectorAll("[data-finished=false][data-elapsed], .job-elapsed[data-elapsed]").forEach((node) => {
      const seconds = Number(node.dataset.elapsed) + 1;
      node.dataset.elapsed = String(seconds);
      const target = node.classList.contains("job-elapsed") ? node : node.querySelector(".job-elapsed");
      if (target) target.textContent = formatSeconds(seconds);
    });
  }

  // ---- Heat map ----------------------------------------------------------------------

  function setUpHeatmapToggle() {
    const button = document.getElementById("heatmap-toggle");
    const heatmap = document.getElementById("heatmap");
    if (!button || !heatmap) return;
    button.addEventListener("click", () => {
      const shown = heatmap.hidden;
      heatmap.hidden = !shown;
      button.setAttribute("aria-pressed", String(shown));
      button.textContent = shown ? "Hide heat map" : "Show heat map";
    });
  }

  function setUpHeatmapControls() {
    const heatmap = document.getElementById("heatmap");
    const opacity = document.getElementById("heatmap-opacity");
    const sideBySide = document.getElementById("side-by-side-toggle");
    const figure = document.getElementById("scan-figure");
    if (heatmap && opacity) {
      const apply = () => { heatmap.style.opacity = String(Number(opacity.value) / 100); };
      opacity.addEventListener("input", apply);
      apply();
    }
    if (sideBySide && figure) {
      sideBySide.addEventListener("click", () => {
        const side = figure.dataset.mode !== "side";
        figure.dataset.mode = side ? "side" : "overlay";
        sideBySide.setAttribute("aria-pressed", String(side));
      });
    }
  }

  // ---- Reading with the keyboard -----------------------------------------------------

  function typingIn(target) {
    return target instanceof HTMLElement &&
      (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName) &&
        !["radio", "checkbox", "range", "button"].includes(target.type));
  }

  function setUpShortcuts() {
    const form = document.getElementById("review-form");
    document.addEventListener("keydown", (event) => {
      if (event.altKey || event.ctrlKey || event.metaKey || typingIn(event.target)) return;
      const key = event.key.toLowerCase();
      const radios = form ? Array.from(form.querySelectorAll("input[name=label]")) : [];
      const link = (rel) => document.querySelector(`#reading-nav a[rel=${rel}]`);
      if (/^[1-9]$/.test(key) && radios[Number(key) - 1]) {
        radios[Number(key) - 1].checked = true;
        radios[Number(key) - 1].focus();
      } else if (key === "c" && form && document.getElementById("predicted-label")) {
        const label = document.getElementById("predicted-label").dataset.label;
        const radio = radios.find((input) => input.value === label);
        if (!radio) return;
        radio.checked = true;
        form.requestSubmit();
      } else if (key === "s" && form) {
        form.requestSubmit();
      } else if ((key === "n" || key === "p") && link(key === "n" ? "next" : "prev")) {
        window.location.assign(link(key === "n" ? "next" : "prev").href);
      } else if (key === "h" && document.getElementById("heatmap-toggle")) {
        document.getElementById("heatmap-toggle").click();
      } else {
        return;
      }
      event.preventDefault();
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    setUpShortcuts();
    setUpUpload();
    setUpHeatmapToggle();
    setUpHeatmapControls();
    setInterval(tickElapsed, 1000);
  });
})();
