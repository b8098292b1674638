// The portal's only script: uploads with per-file progress, live job status, heat-map toggle.
// Plain JavaScript, no build step and nothing loaded from outside the site.
"use strict";

(function () {
  const POLL_MS = 1500;
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

  function announce(text) {
    const announcer = document.getElementById("announcer");
    if (announcer) announcer.textContent = text;
  }

  function now() {
    const date = new Date();
    const pad = (n) => String(n).padStart(2, "0");
    return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
      `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  }

  function formatSeconds(seconds) {
    return `${Number(seconds).toFixed(1)} s`;
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

    function add(files) {
      Array.from(files).forEach((file) => {
        const progress = el("progress", { max: "100", value: "0", "aria-label": `Upload progress of ${file.name}` });
        const state = el("span", { className: "upload-state", text: "waiting" });
        const item = el("li", { className: "upload-item" }, [
          el("span", { className: "file-name", text: file.name }), progress, state,
        ]);
        list.append(item);
        waiting.push({ file, item, progress, state });
      });
      next();
    }

    function send(upload) {
      return new Promise((resolve) => {
        const xhr = new XMLHttpRequest();
        const body = new FormData();
        body.append("image", upload.file, upload.file.name);
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
        upload.progress.value = 100;
        upload.item.classList.add("accepted");
        upload.state.textContent = "uploaded: queued";
        addJobRow(body.job, upload.file.name);
        announce(`${upload.file.name} uploaded and queued.`);
      } else {
        rejected(upload, body.errors || [`The upload failed (HTTP ${xhr.status}).`]);
      }
    }

    function rejected(upload, errors) {
      upload.item.classList.add("rejected");
      upload.state.textContent = "rejected";
      upload.progress.value = 0;
      const list = el("ul", { className: "errors", role: "alert" }, errors.map((message) => el("li", { text: message })));
      upload.item.append(list);
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

  function addJobRow(job, fileName) {
    const table = document.getElementById("jobs-table");
    if (!table) return;
    table.hidden = false;
    const empty = document.getElementById("no-jobs");
    if (empty) empty.remove();
    const row = el("tr", { "data-job": job.id, "data-finished": "false", "data-elapsed": String(job.elapsed_s) }, [
      el("td", {}, [el("img", { className: "thumb", src: job.scan_image_url, alt: `Scan ${fileName}`, width: "48", height: "48" })]),
      el("td", { text: now() }),
      el("td", { className: "job-status" }),
      el("td", { className: "job-result", text: "—" }),
      el("td", { text: "—" }),
      el("td", { className: "job-elapsed" }),
      el("td", {}, [el("a", { href: job.url, text: "Open" })]),
    ]);
    row.dataset.name = fileName;
    table.tBodies[0].prepend(row);
    updateRow(row, job);
  }

  // ---- Live status -------------------------------------------------------------------

  function badge(job) {
    return el("span", { className: `badge status-${job.status_text}`, text: job.status_text });
  }

  function updateRow(row, job) {
    const wasFinished = row.dataset.finished === "true";
    row.dataset.finished = String(job.finished);
    row.dataset.elapsed = String(job.elapsed_s);
    row.querySelector(".job-status").replaceChildren(badge(job));
    row.querySelector(".job-elapsed").textContent = formatSeconds(job.elapsed_s);
    const result = row.querySelector(".job-result");
    if (job.label) {
      const parts = [el("strong", { className: "label", text: job.label }), ` ${Math.round(job.confidence * 100)}%`];
      if (job.needs_review) parts.push(" ", el("span", { className: "badge needs-review", text: "needs review" }));
      result.replaceChildren(...parts);
    } else if (job.outcome) {
      result.replaceChildren(el("span", { className: "badge outcome", text: job.outcome }), " ", el("span", { className: "outcome-reason", text: job.error }));
    } else if (job.status === "failed") {
      result.replaceChildren(el("span", { className: "reason", text: job.error }));
    } else if (job.note) {
      result.replaceChildren(el("span", { className: "note", text: job.note }));
    } else {
      result.textContent = "—"; // the broker is back: the waiting note goes
    }
    if (job.finished && !wasFinished) {
      const name = row.dataset.name || "A scan";
      announce(`${name}: ${job.outcome || job.status_text}${job.label ? `, ${job.label}` : ""}.`);
    }
  }

  function pollTable() {
    const table = document.getElementById("jobs-table");
    if (!table) return;
    const rows = Array.from(table.querySelectorAll("tr[data-job][data-finished=false]"));
    if (!rows.length) return;
    const query = rows.map((row) => `id=${encodeURIComponent(row.dataset.job)}`).join("&");
    fetch(`${table.dataset.statusUrl}?${query}`, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then((response) => (response.ok ? response.json() : { jobs: [] }))
      .then((body) => body.jobs.forEach((job) => {
        const row = table.querySelector(`tr[data-job="${job.id}"]`);
        if (row) updateRow(row, job);
      }))
      .catch(() => { /* a missed poll is retried on the next tick */ });
  }

  function pollDetail() {
    const status = document.getElementById("job-status");
    if (!status || status.dataset.finished === "true") return;
    fetch(`${status.dataset.statusUrl}?id=${encodeURIComponent(status.dataset.job)}`, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then((response) => (response.ok ? response.json() : { jobs: [] }))
      .then((body) => {
        const job = body.jobs[0];
        if (!job) return;
        status.textContent = job.status_text;
        status.className = `badge status-${job.status_text}`;
        const text = document.getElementById("job-status-text");
        if (text) text.textContent = job.status_text;
        const note = document.getElementById("job-note");
        if (note) { note.textContent = job.note; note.hidden = !job.note; }
        // The finished page has the image, bars and review form: load it once.
        if (job.finished) { status.dataset.finished = "true"; window.location.reload(); }
      })
      .catch(() => {});
  }

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

  document.addEventListener("DOMContentLoaded", () => {
    setUpUpload();
    setUpHeatmapToggle();
    setInterval(() => { pollTable(); pollDetail(); }, POLL_MS);
    setInterval(tickElapsed, 1000);
  });
})();
