"use strict";
/* Box editing on an SVG laid over the image: draw, move, resize (mouse or keyboard), delete, set the class by
   its letter key; the models' boxes are dashed suggestions to take. Classes are matched by name, so a box the
   cascade sent as "barrier" stays a barrier. All coordinates are normalised to [0, 1]. */

(() => {
  const SVG_NS = "http://www.w3.org/2000/svg";
  const HANDLE_RADIUS = 5;
  const MIN_SIZE_PX = 4;
  const MIN_SIZE = 0.005; // smallest box the keyboard leaves, normalised
  const NUDGE = 0.005;
  const CORNERS = ["nw", "ne", "sw", "se"];
  const ARROWS = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };

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
    /* classes: [{index, name, key}] from the project's key scheme */
    constructor(svg, { classes, onChange }) {
      this.svg = svg;
      this.classNames = classes.map((c) => c.name);
      this.classByKey = new Map(classes.filter((c) => c.key).map((c) => [c.key, c.index]));
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

    /* suggestions: [[x1, y1, x2, y2, class, score, model]]; saved: what snapshot() returned, to bring back
       an item exactly as the user left it (boxes once, suggestions already taken stay taken). */
    reset(suggestions, saved = null) {
      this.suggestions = suggestions.map(([x1, y1, x2, y2, cls, score, model]) =>
        ordered({ x1, y1, x2, y2, ...this.classOf(cls), score, model, accepted: false }));
      this.boxes = saved ? saved.boxes.map((b) => ({ ...b })) : [];
      for (const index of saved ? saved.accepted : []) {
        if (this.suggestions[index]) this.suggestions[index].accepted = true;
      }
      this.selected = -1;
      this.drag = null;
      this.changed();
    }

    snapshot() {
      return {
        boxes: this.boxes.map((b) => ({ ...b })),
        accepted: this.suggestions.flatMap((s, index) => (s.accepted ? [index] : [])),
      };
    }

    /* A class by name (what the cascade sends) or by index; one the project lacks keeps its name. */
    classOf(cls) {
      const byName = typeof cls === "string" ? this.classNames.indexOf(cls) : -1;
      if (byName >= 0) return { cls: byName, name: cls };
      const index = typeof cls === "number" ? cls : Number.NaN;
      if (Number.isInteger(index) && index >= 0 && index < this.classNames.length) {
        return { cls: index, name: this.classNames[index] };
      }
      return { cls: -1, name: String(cls ?? "unknown") };
    }

    /* The boxes as the API takes them: [x1, y1, x2, y2, class name]. */
    value() {
      return this.boxes.map((b) => [round(b.x1), round(b.y1), round(b.x2), round(b.y2), b.name]);
    }

    get unknownClasses() {
      return [...new Set(this.boxes.filter((b) => b.cls < 0).map((b) => b.name))];
    }

    acceptSuggestion(index) {
      const s = this.suggestions[index];
      if (!s || s.accepted) return;
      s.accepted = true;
      this.boxes.push({ x1: s.x1, y1: s.y1, x2: s.x2, y2: s.y2, cls: s.cls, name: s.name });
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
      if (this.selected >= 0) Object.assign(this.boxes[this.selected], { cls, name: this.classNames[cls] });
      this.changed();
    }

    select(step) {
      if (!this.boxes.length) return false;
      const n = this.boxes.length;
      this.selected = this.selected < 0 ? (step > 0 ? 0 : n - 1) : (this.selected + step + n) % n;
      this.changed();
      return true;
    }

    /* Arrows move the selected box; with Shift they move its right or bottom edge (resize). */
    nudge(dx, dy, resize) {
      const b = this.boxes[this.selected];
      if (resize) {
        b.x2 = Math.min(1, Math.max(b.x1 + MIN_SIZE, b.x2 + dx * NUDGE));
        b.y2 = Math.min(1, Math.max(b.y1 + MIN_SIZE, b.y2 + dy * NUDGE));
      } else {
        const mx = Math.min(Math.max(dx * NUDGE, -b.x1), 1 - b.x2);
        const my = Math.min(Math.max(dy * NUDGE, -b.y1), 1 - b.y2);
        Object.assign(b, { x1: b.x1 + mx, x2: b.x2 + mx, y1: b.y1 + my, y2: b.y2 + my });
      }
      this.changed();
    }

    /* Keys the editor owns; returns true when it used the key. */
    handleKey(event) {
      const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
      if (key === "a") { this.acceptAll(); return true; }
      if (key === "Tab") return this.select(event.shiftKey ? -1 : 1);
      if (this.classByKey.has(key)) { this.setClass(this.classByKey.get(key)); return true; }
      if (this.selected < 0) return false;
      if (key in ARROWS) { this.nudge(...ARROWS[key], event.shiftKey); return true; }
      if (key === "Delete" || key === "Backspace" || key === "d") { this.deleteSelected(); return true; }
      if (key === "Escape") { this.selected = -1; this.changed(); return true; }
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
        const cls = this.lastClass;
        this.boxes.push({ x1: p.x, y1: p.y, x2: p.x, y2: p.y, cls, name: this.classNames[cls] });
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
      this.svg.dataset.boxes = String(this.boxes.length);
      this.svg.dataset.selected = String(this.selected);
      this.onChange({ count: this.boxes.length, selectedClass, unknown: this.unknownClasses });
    }

    colour(cls) {
      return cls < 0 ? "cls-unknown" : `cls-${cls % 20}`;
    }

    render() {
      // Layout size, not the zoomed on-screen size: the SVG scales with the image it lies on.
      const width = this.svg.clientWidth;
      const height = this.svg.clientHeight;
      this.svg.replaceChildren();
      this.suggestions.forEach((s, index) => {
        if (s.accepted) return;
        const g = element("g", { class: `suggestion ${this.colour(s.cls)}`, "data-index": index }, this.svg);
        element("rect", {
          x: s.x1 * width, y: s.y1 * height, width: (s.x2 - s.x1) * width, height: (s.y2 - s.y1) * height,
        }, g);
        const title = element("title", {}, g);
        const score = typeof s.score === "number" ? ` ${s.score.toFixed(2)}` : "";
        const unknown = s.cls < 0 ? " (not a class of this project)" : "";
        title.textContent = `${s.model || "model"}: ${s.name}${unknown}${score} (click to take it)`;
      });
      this.boxes.forEach((b, index) => {
        const selected = index === this.selected;
        const g = element("g", {
          class: `box ${this.colour(b.cls)}${selected ? " selected" : ""}`, "data-index": index, "data-class": b.name,
        }, this.svg);
        const x = b.x1 * width, y = b.y1 * height, w = (b.x2 - b.x1) * width, h = (b.y2 - b.y1) * height;
        element("rect", { class: "frame", x, y, width: w, height: h }, g);
        const name = b.cls < 0 ? `? ${b.name}` : b.name;
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
