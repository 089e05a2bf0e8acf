// The imgclf web page: choose or drop an image, see the model's answer.
// Plain DOM code, no library, nothing fetched from outside this server.
"use strict";

const $ = (id) => document.getElementById(id);
let models = [];

function current() {
  return models.find((m) => m.name === $("model-select").value);
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function describe(model) {
  const [h, w, c] = model.image_shape;
  const parts = [
    model.model_type + (model.k ? ` (k=${model.k})` : ""),
    `${model.classes.length} classes`,
    `${h}x${w}${c === 1 ? " grey" : " colour"} images (others are resized)`,
    `scores: ${model.score}`,
  ];
  return parts.join(" · ");
}

async function loadModels() {
  const response = await fetch("/v1/models");
  models = (await response.json()).models;
  const select = $("model-select");
  for (const model of models) {
    const option = document.createElement("option");
    option.value = model.name;
    option.textContent = model.name;
    select.appendChild(option);
  }
  select.addEventListener("change", modelChanged);
  modelChanged();
}

function modelChanged() {
  const model = current();
  $("model-info").textContent = model ? describe(model) : "no model is served";
  $("random-button").hidden = !model || model.test_images === 0;
  $("result").hidden = true;
  $("neighbors-section").hidden = true;
  $("templates-section").hidden = true;
  showTemplates(model, null);
}

function showPreview(blob) {
  const preview = $("preview");
  if (preview.src) URL.revokeObjectURL(preview.src);
  preview.src = URL.createObjectURL(blob);
  preview.hidden = false;
  $("drop-hint").textContent = "Drop another image, or";
}

async function classify(blob, name) {
  const model = current();
  if (!model) return;
  showPreview(blob);
  setStatus("classifying…");
  const type = blob.type && blob.type.startsWith("image/") ? blob.type : "application/octet-stream";
  const started = performance.now();
  let answer;
  try {
    const response = await fetch(`/v1/models/${encodeURIComponent(model.name)}/predict?top=5`, {
      method: "POST",
      headers: { "Content-Type": type },
      body: blob,
    });
    answer = await response.json();
    if (!response.ok) {
      setStatus(`${response.status}: ${answer.error}`, true);
      $("result").hidden = true;
      return;
    }
  } catch (error) {
    setStatus(`request failed: ${error}`, true);
    return;
  }
  const ms = (performance.now() - started).toFixed(1);
  setStatus(`answered in ${ms} ms`);
  showAnswer(model, answer, name);
}

function showAnswer(model, answer, name) {
  $("result").hidden = false;
  $("result-file").textContent =
    (name || "image") + (answer.resized ? ` · resized to ${answer.resized}` : "");
  $("predicted-label").textContent = answer.label;
  $("score-kind").textContent = `top ${answer.top.length} classes by ${answer.score}`;
  const bars = $("top-bars");
  bars.replaceChildren();
  const values = answer.top.map((t) => t.score);
  const low = answer.score === "margin" ? Math.min(...values) : 0;
  const high = answer.score === "margin" ? Math.max(...values) : 1;
  for (const entry of answer.top) {
    const fraction = high > low ? (entry.score - low) / (high - low) : 1;
    const item = document.createElement("li");
    item.className = "top-entry";
    const label = document.createElement("span");
    label.className = "class-name";
    label.textContent = entry.class;
    const bar = document.createElement("span");
    bar.className = "bar";
    const fill = document.createElement("span");
    fill.style.width = `${Math.max(0, Math.min(1, fraction)) * 100}%`;
    bar.appendChild(fill);
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = entry.score.toFixed(answer.score === "margin" ? 2 : 3);
    item.append(label, bar, score);
    bars.appendChild(item);
  }
  showNeighbors(model, answer);
  showTemplates(model, answer.label);
}

function tile(src, caption, detail, className) {
  const div = document.createElement("div");
  div.className = "tile" + (className ? " " + className : "");
  const img = document.createElement("img");
  img.src = src;
  img.alt = caption;
  const text = document.createElement("div");
  text.textContent = caption;
  div.append(img, text);
  if (detail) {
    const small = document.createElement("div");
    small.className = "distance";
    small.textContent = detail;
    div.appendChild(small);
  }
  return div;
}

function showNeighbors(model, answer) {
  const section = $("neighbors-section");
  if (!answer.neighbors || !model.training_images) {
    section.hidden = true;
    return;
  }
  const box = $("neighbors");
  box.replaceChildren();
  for (const n of answer.neighbors) {
    const src = `/v1/models/${encodeURIComponent(model.name)}/train/${n.index}.png`;
    const same = n.class === answer.label ? "same" : "";
    box.appendChild(tile(src, n.class, `#${n.index} · d=${n.distance.toFixed(1)}`, same));
  }
  section.hidden = false;
}

function showTemplates(model, label) {
  const section = $("templates-section");
  if (!model || !model.templates) {
    section.hidden = true;
    return;
  }
  const box = $("templates");
  if (box.dataset.model !== model.name) {
    box.replaceChildren();
    model.classes.forEach((name, i) => {
      const src = `/v1/models/${encodeURIComponent(model.name)}/templates/${i}.png`;
      const t = tile(src, name, "", "");
      t.dataset.class = name;
      box.appendChild(t);
    });
    box.dataset.model = model.name;
  }
  for (const t of box.children) {
    t.classList.toggle("highlight", label !== null && t.dataset.class === label);
  }
  section.hidden = false;
}

async function randomTestImage() {
  const model = current();
  const index = Math.floor(Math.random() * model.test_images);
  const response = await fetch(`/v1/models/${encodeURIComponent(model.name)}/test/${index}.png`);
  if (!response.ok) {
    setStatus(`could not fetch test image ${index}`, true);
    return;
  }
  const truth = response.headers.get("x-imgclf-class");
  $("true-class").textContent = truth ? `test image #${index}, labelled ${truth}` : "";
  await classify(await response.blob(), `test image #${index}`);
}

function setUpInput() {
  $("file-input").addEventListener("change", (event) => {
    const file = event.target.files[0];
    if (file) {
      $("true-class").textContent = "";
      classify(file, file.name);
    }
  });
  const zone = $("drop-zone");
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    const file = event.dataTransfer.files[0];
    if (file) {
      $("true-class").textContent = "";
      classify(file, file.name);
    }
  });
  $("random-button").addEventListener("click", randomTestImage);
}

setUpInput();
loadModels().catch((error) => setStatus(`cannot list the models: ${error}`, true));
