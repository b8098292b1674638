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
        // A DICOM series or study answers with one row per slice.
        (body.rows_html || [body.row_html]).forEach((html) => addJobRow(html));
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
      const messages = el("ul", { className: "errors" }, errors.map((message) => el("li", { text: message })));
      upload.item.append(el("div", { role: "alert", className: "upload-errors" }, [messages]));
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

  // ---- Viewer: zoom, pan, window/level ----------------------------------------------

  function setUpViewer() {
    const viewer = document.getElementById("viewer");
    const content = document.getElementById("viewer-content");
    const scan = document.getElementById("scan-image");
    if (!viewer || !content || !scan) return;
    const output = document.getElementById("viewer-state");
    const windowMode = document.getElementById("viewer-window-mode");
    const view = { scale: 1, x: 0, y: 0, brightness: 100, contrast: 100 };
    const clamp = (value, low, high) => Math.min(high, Math.max(low, value));

    function apply() {
      view.scale = clamp(view.scale, 1, 16);
      const width = viewer.clientWidth;
      const height = viewer.clientHeight;
      view.x = clamp(view.x, width - width * view.scale, 0);
      view.y = clamp(view.y, height - height * view.scale, 0);
      content.style.transform = `translate(${view.x}px, ${view.y}px) scale(${view.scale})`;
      // Window/level on the scan only: the heat map keeps its colours.
      scan.style.filter = `brightness(${view.brightness}%) contrast(${view.contrast}%)`;
      output.textContent = `${Math.round(view.scale * 100)}% · brightness ${view.brightness}% · contrast ${view.contrast}%`;
    }

    function zoom(factor, centreX, centreY) {
      const x = centreX === undefined ? viewer.clientWidth / 2 : centreX;
      const y = centreY === undefined ? viewer.clientHeight / 2 : centreY;
      const scale = clamp(view.scale * factor, 1, 16);
      view.x = x - ((x - view.x) * scale) / view.scale;
      view.y = y - ((y - view.y) * scale) / view.scale;
      view.scale = scale;
      apply();
    }

    const actions = {
      "zoom-in": () => zoom(1.25),
      "zoom-out": () => zoom(0.8),
      // One image pixel per screen pixel: the full resolution of the original.
      actual: () => zoom(scan.naturalWidth / (viewer.clientWidth * view.scale)),
      reset: () => {
        Object.assign(view, { scale: 1, x: 0, y: 0, brightness: 100, contrast: 100 });
        apply();
      },
    };
    document.querySelectorAll("[data-viewer]").forEach((button) => {
      button.addEventListener("click", () => actions[button.dataset.viewer]());
    });

    viewer.addEventListener("wheel", (event) => {
      event.preventDefault();
      const box = viewer.getBoundingClientRect();
      zoom(event.deltaY < 0 ? 1.15 : 1 / 1.15, event.clientX - box.left, event.clientY - box.top);
    }, { passive: false });

    let drag = null;
    viewer.addEventListener("pointerdown", (event) => {
      drag = { x: event.clientX, y: event.clientY, level: event.shiftKey || (windowMode && windowMode.checked) };
      viewer.setPointerCapture(event.pointerId);
    });
    viewer.addEventListener("pointermove", (event) => {
      if (!drag) return;
      const dx = event.clientX - drag.x;
      const dy = event.clientY - drag.y;
      drag.x = event.clientX;
      drag.y = event.clientY;
      if (drag.level) {
        view.contrast = clamp(Math.round(view.contrast + dx), 20, 400);
        view.brightness = clamp(Math.round(view.brightness - dy), 20, 400);
      } else {
        view.x += dx;
        view.y += dy;
      }
      apply();
    });
    ["pointerup", "pointercancel"].forEach((name) => viewer.addEventListener(name, () => { drag = null; }));

    viewer.addEventListener("keydown", (event) => {
      const keys = {
        "+": () => zoom(1.25), "=": () => zoom(1.25), "-": () => zoom(0.8), "0": actions.reset,
        ArrowLeft: () => { view.x += 40; apply(); }, ArrowRight: () => { view.x -= 40; apply(); },
        ArrowUp: () => { view.y += 40; apply(); }, ArrowDown: () => { view.y -= 40; apply(); },
        ",": () => { view.brightness = clamp(view.brightness - 10, 20, 400); apply(); },
        ".": () => { view.brightness = clamp(view.brightness + 10, 20, 400); apply(); },
        "[": () => { view.contrast = clamp(view.contrast - 10, 20, 400); apply(); },
        "]": () => { view.contrast = clamp(view.contrast + 10, 20, 400); apply(); },
      };
      if (!keys[event.key]) return;
      event.preventDefault();
      event.stopPropagation();
      keys[event.key]();
    });
    window.addEventListener("resize", apply);
    apply();
  }

  function setUpTheme() {
    const button = document.getElementById("theme-toggle");
    const root = document.documentElement;
    const stored = window.localStorage.getItem("portal-theme");
    if (stored === "dark") root.dataset.theme = "dark";
    if (!button) return;
    const show = () => button.setAttribute("aria-pressed", String(root.dataset.theme === "dark"));
    button.addEventListener("click", () => {
      if (root.dataset.theme === "dark") delete root.dataset.theme;
      else root.dataset.theme = "dark";
      window.localStorage.setItem("portal-theme", root.dataset.theme || "light");
      show();
    });
    show();
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
    setUpTheme();
    setUpViewer();
    setUpShortcuts();
    setUpUpload();
    setUpHeatmapToggle();
    setUpHeatmapControls();
    setInterval(tickElapsed, 1000);
  });
})();
