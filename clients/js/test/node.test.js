// Node runner: the unit cases, then the live cases when a LiveDrop node is given
// (LIVEDROP_JS_HTTP and LIVEDROP_JS_HOST_TOKEN; the pytest suite starts one and sets them).
// LIVEDROP_JS_CASES=unit or =live runs only those. The live cases need a WebSocket: Node 22 has
// one built in, Node 20 behind --experimental-websocket.

import { test } from "node:test";
import * as lib from "../src/index.js";
import { liveCases } from "./live-cases.js";
import { unitCases } from "./unit-cases.js";

const only = process.env.LIVEDROP_JS_CASES || "";
const env = {
  http: process.env.LIVEDROP_JS_HTTP,
  hostToken: process.env.LIVEDROP_JS_HOST_TOKEN,
  scale: Number(process.env.LIVEDROP_TEST_TIMEOUT_SCALE || "1"),
};

if (only !== "live") for (const { name, fn } of unitCases) test(name, () => fn(lib));

if (only !== "unit") {
  const skip = !env.http ? "no LiveDrop node (set LIVEDROP_JS_HTTP and LIVEDROP_JS_HOST_TOKEN)" : false;
  for (const { name, fn } of liveCases) test(`live: ${name}`, { skip }, () => fn(lib, env));
}
