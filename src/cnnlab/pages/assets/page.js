(function () {
  function cellValue(td) {
    if (td.dataset.v !== undefined) return parseFloat(td.dataset.v);
    var n = parseFloat(td.textContent.replace(/,/g, ""));
    return isNaN(n) ? td.textContent.trim().toLowerCase() : n;
  }
  function compare(a, b) {
    if (typeof a === typeof b) return a < b ? -1 : a > b ? 1 : 0;
    return typeof a === "number" ? -1 : 1;
  }
  function sortBy(table, col, th) {
    var desc = !th.classList.contains("desc");
    table.querySelectorAll("th").forEach(function (h) { h.classList.remove("asc", "desc"); });
    th.classList.add(desc ? "desc" : "asc");
    var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows), children = {}, roots = [];
    rows.forEach(function (r) {
      var p = r.dataset.parent;
      if (p) (children[p] = children[p] || []).push(r); else roots.push(r);
    });
    function ordered(list) {
      return list.slice().sort(function (a, b) {
        var c = compare(cellValue(a.cells[col]), cellValue(b.cells[col]));
        return desc ? -c : c;
      });
    }
    function append(list) {
      ordered(list).forEach(function (r) { body.appendChild(r); if (children[r.dataset.path]) append(children[r.dataset.path]); });
    }
    append(roots);
  }
  function showDepth(table, depth) {
    Array.prototype.forEach.call(table.tBodies[0].rows, function (r) {
      var d = parseInt(r.dataset.depth || "1", 10);
      r.classList.toggle("hidden", d > depth);
      var b = r.querySelector("button.fold");
      if (b) b.textContent = d < depth ? "\u25BE" : "\u25B8";
    });
  }
  function toggle(table, row) {
    var b = row.querySelector("button.fold"), open = b.textContent === "\u25B8";
    b.textContent = open ? "\u25BE" : "\u25B8";
    var path = row.dataset.path, prefix = path + ".";
    Array.prototype.forEach.call(table.tBodies[0].rows, function (r) {
      if (open && r.dataset.parent === path) r.classList.remove("hidden");
      if (!open && r.dataset.path.indexOf(prefix) === 0) {
        r.classList.add("hidden");
        var c = r.querySelector("button.fold"); if (c) c.textContent = "\u25B8";
      }
    });
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    table.querySelectorAll("th").forEach(function (th, col) {
      th.addEventListener("click", function () { sortBy(table, col, th); });
    });
    table.querySelectorAll("button.fold").forEach(function (b) {
      b.addEventListener("click", function (e) { e.stopPropagation(); toggle(table, b.closest("tr")); });
    });
  });
  document.querySelectorAll(".depths button").forEach(function (b) {
    b.addEventListener("click", function () {
      showDepth(document.getElementById(b.parentNode.dataset.table), parseInt(b.dataset.depth, 10));
    });
  });
  function geometry() {
    var boxes = [], outside = 0, overlaps = 0;
    document.querySelectorAll("svg.cnnlab-diagram g.node").forEach(function (g) {
      var shape = g.querySelector("rect") || g.querySelector("circle"), box = g.getBBox();
      if (shape.tagName === "rect") {
        box = shape.getBBox();
        g.querySelectorAll("text").forEach(function (t) {
          var b = t.getBBox();
          if (b.x < box.x - 0.5 || b.x + b.width > box.x + box.width + 0.5 || b.y < box.y - 0.5 ||
              b.y + b.height > box.y + box.height + 0.5) outside++;
        });
      }
      boxes.push(box);
    });
    for (var i = 0; i < boxes.length; i++) for (var j = i + 1; j < boxes.length; j++) {
      var a = boxes[i], b = boxes[j];
      if (a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height) overlaps++;
    }
    return {overlaps: overlaps, labels_outside: outside};
  }
  if (location.hash.indexOf("#test") === 0) {
    var tree = document.querySelector("table.sortable[data-tree]");
    if (location.hash === "#test-sort" && tree) {
      var th = tree.querySelector("th[data-key=params]");
      th.click();
    }
    var top = tree ? Array.prototype.filter.call(tree.tBodies[0].rows, function (r) { return !r.dataset.parent; }) : [];
    var result = {
      errors: window.__errors,
      nodes: Array.prototype.map.call(document.querySelectorAll("svg.cnnlab-diagram g.node"), function (g) { return g.dataset.path; }),
      top_rows: top.map(function (r) { return r.dataset.path; }),
      top_params: top.map(function (r) { return parseFloat(r.querySelector("td[data-key=params]").dataset.v); }),
      images: Array.prototype.filter.call(document.images, function (i) { return i.complete && i.naturalWidth > 0; }).length,
      geometry: geometry()
    };
    var pre = document.createElement("pre");
    pre.id = "test-result";
    pre.textContent = JSON.stringify(result);
    document.body.appendChild(pre);
  }
})();
