// Node runner: every unit case, then the live cases when a LiveDrop node is given
// (LIVEDROP_JS_HTTP and LIVEDROP_JS_HOST_TOKEN; the pytest suite starts one and sets them).
// Node 20 needs --experimental-websocket for the live cases; Node 22 has WebSocket built in.

import { test } from "node:test";
import * as lib from "../src/index.js";
import { liveCases } from "./live-cases.js";
import { unitCases } from "./unit-cases.js";

for (const { name, fn } of unitCases) test(name, () => fn(lib));

const env = { http: process.env.LIVEDROP_JS_HTTP, hostToken: process.env.LIVEDROP_JS_HOST_TOKEN };
const skip = !env.http ? "no LiveDrop node (set LIVEDROP_JS_HTTP and LIVEDROP_JS_HOST_TOKEN)" : false;
for (const { name, fn } of liveCases) test(`live: ${name}`, { skip }, () => fn(lib, env));
