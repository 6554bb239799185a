// report.html's own behaviour: the sortable, filterable trials table and the explanation browser.
// Both are rendered from the JSON block #report-data written by fusion-sweep (no network, no libraries).
"use strict";

(function () {
  const data = JSON.parse(document.getElementById("report-data").textContent);

  function element(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "text") node.textContent = value;
      else node.setAttribute(key, value);
    }
    for (const child of children || []) node.appendChild(child);
    return node;
  }

  function formatCell(value, column) {
    if (value === null || value === undefined || (typeof value === "number" && !isFinite(value))) return "–";
    if (column.type === "num" && typeof value === "number") {
      return value.toLocaleString("en-US", {minimumFractionDigits: column.digits,
                                            maximumFractionDigits: column.digits});
    }
    return String(value);
  }

  // ------------------------------------------------------------------ trials table
  function trialsTable(root, table) {
    const state = {sortKey: null, descending: false, filter: ""};
    const input = element("input", {type: "search", placeholder: "filter rows: words that must all appear, e.g. block3 seed 1",
                                    class: "filter", "aria-label": "filter trials"});
    const count = element("span", {class: "count"});
    const head = element("tr", {}, table.columns.map((column, index) => {
      const th = element("th", {text: column.title, title: column.key + " (click to sort)", "data-index": index});
      th.addEventListener("click", () => {
        state.descending = state.sortKey === index ? !state.descending : column.type === "num";
        state.sortKey = index;
        render();
      });
      return th;
    }));
    const body = element("tbody");
    root.appendChild(element("div", {class: "table-tools"}, [input, count]));
    root.appendChild(element("div", {class: "table-scroll"},
                             [element("table", {class: "trials"}, [element("thead", {}, [head]), body])]));
    const texts = table.rows.map(row => row.map((v, i) => formatCell(v, table.columns[i])).join(" ").toLowerCase());
    input.addEventListener("input", () => { state.filter = input.value.trim().toLowerCase(); render(); });

    function compare(a, b) {
      const x = a[state.sortKey], y = b[state.sortKey];
      const missingX = x === null || (typeof x === "number" && !isFinite(x));
      const missingY = y === null || (typeof y === "number" && !isFinite(y));
      if (missingX || missingY) return missingX - missingY;  // missing values last either way
      const order = typeof x === "number" ? x - y : String(x).localeCompare(String(y), "en", {numeric: true});
      return state.descending ? -order : order;
    }

    function render() {
      const words = state.filter.split(/\s+/).filter(Boolean);
      let rows = table.rows.map((row, i) => [row, texts[i]]).filter(([, text]) => words.every(w => text.includes(w)))
        .map(([row]) => row);
      if (state.sortKey !== null) rows = rows.slice().sort(compare);
      body.replaceChildren(...rows.map(row => element("tr", {}, row.map((value, i) =>
        element("td", {text: formatCell(value, table.columns[i]), class: table.columns[i].type}))
      )));
      head.querySelectorAll("th").forEach((th, i) => {
        th.classList.toggle("sorted", i === state.sortKey);
        th.classList.toggle("descending", i === state.sortKey && state.descending);
      });
      count.textContent = `${rows.length} of ${table.rows.length} rows`;
    }
    render();
  }

  // ------------------------------------------------------------------ explanation browser
  function picture(src, size, layers) {
    const frame = element("div", {class: "picture"});
    frame.appendChild(element("img", {src: src, alt: ""}));
    for (const layer of layers) frame.appendChild(layer);
    return frame;
  }

  function outlineLayer(image) {
    const [h, w] = image.size;
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
    svg.setAttribute("class", "outline");
    if (image.lesion_path) {
      const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
      path.setAttribute("d", image.lesion_path);
      path.setAttribute("class", "lesion");
      svg.appendChild(path);
    }
    if (image.marker_box) {
      const [y0, x0, y1, x1] = image.marker_box;
      const rect = document.createElementNS("http://www.w3.org/2000/svg", "rect");
      for (const [k, v] of Object.entries({x: x0, y: y0, width: x1 - x0, height: y1 - y0})) rect.setAttribute(k, v);
      rect.setAttribute("class", "marker");
      svg.appendChild(rect);
    }
    return svg;
  }

  function scoreList(entry, columns) {
    return element("dl", {class: "scores"}, columns.flatMap(column => [
      element("dt", {text: column.title}), element("dd", {text: formatCell(entry[column.key], column)})]));
  }

  function explanationCard(model, image, entry, browser) {
    const card = element("figure", {class: "card"});
    const caption = element("figcaption");
    caption.appendChild(element("div", {class: "model-name", text: model.name}));
    caption.appendChild(element("div", {class: "image-name",
                                        text: `${image.id} · true ${image.label} · predicted ${entry.pred}`}));
    card.appendChild(caption);
    if (image.src && entry.overlay) {
      const row = element("div", {class: "pictures"});
      row.appendChild(picture(image.src, image.size, [outlineLayer(image)]));
      row.appendChild(picture(image.src, image.size, [element("img", {src: entry.overlay, alt: "", class: "map"}),
                                                     outlineLayer(image)]));
      card.appendChild(row);
    }
    card.appendChild(scoreList(entry, browser.score_columns));
    return card;
  }

  function explanationBrowser(root, browser) {
    const models = browser.models, images = browser.images;
    const modelSelect = element("select", {"aria-label": "model"},
      [element("option", {value: "*", text: "every model"}),
       ...models.map((m, i) => element("option", {value: String(i), text: m.name}))]);
    const imageSelect = element("select", {"aria-label": "image"},
      [element("option", {value: "*", text: "every image"}),
       ...images.map((im, i) => element("option", {value: String(i), text: `${im.id} (${im.label})`}))]);
    modelSelect.value = models.length ? "0" : "*";
    const cards = element("div", {class: "cards"});
    root.appendChild(element("div", {class: "browser-tools"}, [
      element("label", {text: "model "}, [modelSelect]), element("label", {text: " image "}, [imageSelect])]));
    root.appendChild(cards);

    function render() {
      const pickedModels = modelSelect.value === "*" ? models : [models[+modelSelect.value]];
      const pickedImages = imageSelect.value === "*" ? images : [images[+imageSelect.value]];
      const shown = [];
      for (const model of pickedModels) {
        for (const image of pickedImages) {
          const entry = (browser.maps[model.key] || {})[image.id];
          if (entry) shown.push(explanationCard(model, image, entry, browser));
        }
      }
      cards.replaceChildren(...(shown.length ? shown : [element("p", {class: "note", text: "No explanation for this choice."})]));
    }
    modelSelect.addEventListener("change", render);
    imageSelect.addEventListener("change", render);
    render();
  }

  const tableRoot = document.getElementById("trials-table");
  if (tableRoot && data.trials) trialsTable(tableRoot, data.trials);
  const browserRoot = document.getElementById("explanation-browser");
  if (browserRoot && data.explanations) explanationBrowser(browserRoot, data.explanations);
  document.body.setAttribute("data-report-ready", "true");
})();
