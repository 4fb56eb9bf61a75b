// A hand-written SVG line chart for the last minute of figures (no library, no build step).

const NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

export class LiveChart {
  /**
   * series: [{key, label, className}]; the chart keeps `capacity` samples per series.
   */
  constructor(container, series, { capacity = 60, title = "" } = {}) {
    this.series = series;
    this.capacity = capacity;
    this.title = title;
    this.samples = [];
    this.width = 600;
    this.height = 140;
    this.root = svg("svg", {
      viewBox: `0 0 ${this.width} ${this.height}`,
      preserveAspectRatio: "none",
      class: "chart-svg",
      role: "img",
    });
    this.grid = svg("g", { class: "chart-grid" });
    this.root.append(this.grid);
    this.lines = new Map();
    for (const s of series) {
      const area = svg("path", { class: `chart-area ${s.className}` });
      const line = svg("polyline", { class: `chart-line ${s.className}`, fill: "none" });
      this.root.append(area, line);
      this.lines.set(s.key, { line, area });
    }
    this.maxLabel = document.createElement("span");
    this.maxLabel.className = "chart-max";
    container.append(this.root, this.maxLabel);
    this.render();
  }

  push(sample) {
    this.samples.push(sample);
    if (this.samples.length > this.capacity) this.samples.shift();
    this.render();
  }

  clear() {
    this.samples = [];
    this.render();
  }

  render() {
    const { width, height } = this;
    const pad = 6;
    let max = 1;
    for (const sample of this.samples) for (const s of this.series) max = Math.max(max, sample[s.key] || 0);
    max = niceCeil(max);
    this.grid.replaceChildren();
    for (const frac of [0.25, 0.5, 0.75]) {
      const y = pad + (height - 2 * pad) * frac;
      this.grid.append(svg("line", { x1: 0, x2: width, y1: y, y2: y }));
    }
    const step = width / Math.max(1, this.capacity - 1);
    const offset = (this.capacity - this.samples.length) * step;
    for (const s of this.series) {
      const points = this.samples.map((sample, i) => {
        const x = offset + i * step;
        const y = height - pad - ((sample[s.key] || 0) / max) * (height - 2 * pad);
        return [x.toFixed(1), y.toFixed(1)];
      });
      const { line, area } = this.lines.get(s.key);
      line.setAttribute("points", points.map((p) => p.join(",")).join(" "));
      if (points.length > 1) {
        const first = points[0][0];
        const last = points[points.length - 1][0];
        area.setAttribute("d", `M${first},${height} L${points.map((p) => p.join(",")).join(" L")} L${last},${height} Z`);
      } else {
        area.setAttribute("d", "");
      }
    }
    this.maxLabel.textContent = `max ${max}/s`;
    const latest = this.samples[this.samples.length - 1] || {};
    const summary = this.series.map((s) => `${s.label} now ${latest[s.key] ?? 0}`).join(", ");
    this.root.setAttribute("aria-label", `${this.title}, last ${this.capacity} seconds: ${summary}`);
  }
}

function niceCeil(value) {
  const pow = 10 ** Math.floor(Math.log10(value));
  for (const m of [1, 2, 5, 10]) if (value <= m * pow) return m * pow;
  return 10 * pow;
}
