// LiveDrop viewer client: a dependency-free ES module for the viewer protocol (docs/protocol.md).

/** The package version (package.json says the same; a test checks). */
export const VERSION = "0.1.0";

export { CloseCode, LiveDropClient, SUBPROTOCOL, backoffDelay, closeMeaning, connect } from "./client.js";
export { ServerClock, deadlineOf } from "./clock.js";
export { RequestError, checkRef, newRef, Requests } from "./requests.js";
export { Applied, SEQUENCED, Snapshot, isSoldOut } from "./snapshot.js";
