"use strict";
/* Box editing on an SVG laid over the image: draw, move, resize by the corners, delete, set the class; the
   models' boxes are dashed suggestions to accept. All coordinates are normalised to [0, 1]. */

(() => {
  const SVG_NS = "http://www.w3.org/2000/svg";
  const HANDLE_RADIUS = 5;
  const MIN_SIZE_PX = 4;
  const CORNERS = ["nw", "ne", "sw", "se"];

  const clamp01 = (v) => Math.min(1, Math.max(0, v));
  const round = (v) => Math.round(v * 1e5) / 1e5;

  function element(name, attrs, parent) {
    const node = document.createElementNS(SVG_NS, name);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
    if (parent) parent.appendChild(node);
    return node;
  }

  function ordered(box) {
    return {
      ...box,
      x1: Math.min(box.x1, box.x2), y1: Math.min(box.y1, box.y2),
      x2: Math.max(box.x1, box.x2), y2: Math.max(box.y1, box.y2),
    };
  }

  // The corner opposite the one grabbed stays put while resizing.
  function anchorOf(box, corner) {
    return { x: corner.includes("w") ? box.x2 : box.x1, y: corner.includes("n") ? box.y2 : box.y1 };
  }

  class BoxEditor {
    constructor(svg, { classNames, onChange }) {
      this.svg = svg;
      this.classNames = classNames;
      this.onChange = onChange || (() => {});
      this.boxes = [];
      this.suggestions = [];
      this.selected = -1;
      this.drag = null;
      this.lastClass = 0;
      svg.addEventListener("pointerdown", (e) => this.pointerDown(e));
      svg.addEventListener("pointermove", (e) => this.pointerMove(e));
      svg.addEventListener("pointerup", (e) => this.pointerUp(e));
      svg.addEventListener("pointercancel", () => this.cancelDrag());
    }

    /* suggestions: [[x1, y1, x2, y2, class, score, model]]; boxes: [[x1, y1, x2, y2, class]] */
    reset(suggestions, boxes = []) {
      this.suggestions = suggestions.map(([x1, y1, x2, y2, cls, score, model]) =>
        ordered({ x1, y1, x2, y2, cls: this.knownClass(cls), score, model, accepted: false }));
      this.boxes = boxes.map(([x1, y1, x2, y2, cls]) => ordered({ x1, y1, x2, y2, cls }));
      this.selected = -1;
      this.drag = null;
      this.changed();
    }

    knownClass(cls) {
      const index = Number(cls);
      return Number.isInteger(index) && index >= 0 && index < this.classNames.length ? index : 0;
    }

    value() {
      return this.boxes.map((b) => [round(b.x1), round(b.y1), round(b.x2), round(b.y2), b.cls]);
    }

    acceptSuggestion(index) {
      const s = this.suggestions[index];
      if (!s || s.accepted) return;
      s.accepted = true;
      this.boxes.push({ x1: s.x1, y1: s.y1, x2: s.x2, y2: s.y2, cls: s.cls });
      this.selected = this.boxes.length - 1;
      this.changed();
    }

    acceptAll() {
      let accepted = 0;
      this.suggestions.forEach((s, index) => {
        if (!s.accepted) { this.acceptSuggestion(index); accepted += 1; }
      });
      return accepted;
    }

    deleteSelected() {
      if (this.selected < 0) return;
      this.boxes.splice(this.selected, 1);
      this.selected = -1;
      this.changed();
    }

    /* Sets the selected box's class; the next box drawn gets it too. */
    setClass(cls) {
      if (cls < 0 || cls >= this.classNames.length) return;
      this.lastClass = cls;
      if (this.selected >= 0) this.boxes[this.selected].cls = cls;
      this.changed();
    }

    /* Keys the editor owns; returns true when it used the key. */
    handleKey(event) {
      const key = event.key;
      if (key === "a" || key === "A") { this.acceptAll(); return true; }
      if (this.selected < 0) return false;
      if (key === "Delete" || key === "Backspace") { this.deleteSelected(); return true; }
      if (key === "Escape") { this.selected = -1; this.changed(); return true; }
      if (/^[0-9]$/.test(key)) {
        const cls = key === "0" ? 9 : Number(key) - 1;
        this.setClass(cls);
        return true;
      }
      return false;
    }

    point(event) {
      const rect = this.svg.getBoundingClientRect();
      return {
        x: clamp01((event.clientX - rect.left) / rect.width),
        y: clamp01((event.clientY - rect.top) / rect.height),
      };
    }

    pointerDown(event) {
      if (event.button !== 0) return;
      const target = event.target;
      const p = this.point(event);
      const suggestion = target.closest(".suggestion");
      const box = target.closest(".box");
      if (suggestion) {
        this.acceptSuggestion(Number(suggestion.dataset.index));
        event.preventDefault();
        return;
      }
      if (target.dataset.corner && box) {
        const index = Number(box.dataset.index);
        this.selected = index;
        this.drag = { mode: "resize", index, anchor: anchorOf(this.boxes[index], target.dataset.corner) };
      } else if (box) {
        const index = Number(box.dataset.index);
        this.selected = index;
        this.drag = { mode: "move", index, start: p, origin: { ...this.boxes[index] } };
      } else {
        this.boxes.push({ x1: p.x, y1: p.y, x2: p.x, y2: p.y, cls: this.lastClass });
        this.selected = this.boxes.length - 1;
        this.drag = { mode: "draw", index: this.selected, anchor: p };
      }
      this.svg.setPointerCapture(event.pointerId);
      event.preventDefault();
      this.changed();
    }

    pointerMove(event) {
      if (!this.drag) return;
      const p = this.point(event);
      const box = this.boxes[this.drag.index];
      if (this.drag.mode === "move") {
        const o = this.drag.origin;
        const dx = Math.min(Math.max(p.x - this.drag.start.x, -o.x1), 1 - o.x2);
        const dy = Math.min(Math.max(p.y - this.drag.start.y, -o.y1), 1 - o.y2);
        Object.assign(box, { x1: o.x1 + dx, y1: o.y1 + dy, x2: o.x2 + dx, y2: o.y2 + dy });
      } else {
        Object.assign(box, ordered({ x1: this.drag.anchor.x, y1: this.drag.anchor.y, x2: p.x, y2: p.y }));
      }
      this.render();
    }

    pointerUp(event) {
      if (!this.drag) return;
      const { mode, index } = this.drag;
      this.drag = null;
      if (this.svg.hasPointerCapture(event.pointerId)) this.svg.releasePointerCapture(event.pointerId);
      const rect = this.svg.getBoundingClientRect();
      const box = this.boxes[index];
      const tiny = (box.x2 - box.x1) * rect.width < MIN_SIZE_PX || (box.y2 - box.y1) * rect.height < MIN_SIZE_PX;
      if (mode === "draw" && tiny) {
        // A click on the background: deselect rather than leave a dot behind.
        this.boxes.splice(index, 1);
        this.selected = -1;
      }
      this.changed();
    }

    cancelDrag() {
      this.drag = null;
      this.render();
    }

    changed() {
      this.render();
      const selectedClass = this.selected >= 0 ? this.boxes[this.selected].cls : this.lastClass;
      this.onChange({ count: this.boxes.length, selectedClass });
    }

    render() {
      const { width, height } = this.svg.getBoundingClientRect();
      this.svg.replaceChildren();
      this.suggestions.forEach((s, index) => {
        if (s.accepted) return;
        const g = element("g", { class: `suggestion cls-${s.cls % 10}`, "data-index": index }, this.svg);
        element("rect", {
          x: s.x1 * width, y: s.y1 * height, width: (s.x2 - s.x1) * width, height: (s.y2 - s.y1) * height,
        }, g);
        const title = element("title", {}, g);
        const score = typeof s.score === "number" ? ` ${s.score.toFixed(2)}` : "";
        title.textContent = `${s.model || "model"}: ${this.classNames[s.cls] ?? s.cls}${score} (click to accept)`;
      });
      this.boxes.forEach((b, index) => {
        const selected = index === this.selected;
        const g = element("g", { class: `box cls-${b.cls % 10}${selected ? " selected" : ""}`, "data-index": index }, this.svg);
        const x = b.x1 * width, y = b.y1 * height, w = (b.x2 - b.x1) * width, h = (b.y2 - b.y1) * height;
        element("rect", { class: "frame", x, y, width: w, height: h }, g);
        const name = this.classNames[b.cls] ?? String(b.cls);
        const labelY = y >= 16 ? y - 16 : y;
        element("rect", { class: "label-bg", x, y: labelY, width: 8 + name.length * 7, height: 16 }, g);
        const text = element("text", { x: x + 4, y: labelY + 12 }, g);
        text.textContent = name;
        if (selected) {
          for (const corner of CORNERS) {
            element("circle", {
              class: `handle ${corner}`, "data-corner": corner, r: HANDLE_RADIUS,
              cx: corner.includes("w") ? x : x + w, cy: corner.includes("n") ? y : y + h,
            }, g);
          }
        }
      });
    }
  }

  window.BoxEditor = BoxEditor;
})();
