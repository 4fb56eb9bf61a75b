// The host HTTP API (/api/...), with the bearer host token. Used for what a host *does*; what
// happens live arrives on the host WebSocket channel (channel.js), never by polling.

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

export class HostApi {
  constructor(token) {
    this.token = token;
  }

  async call(method, path, body) {
    const init = { method, headers: { Authorization: `Bearer ${this.token}` } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      throw new ApiError(0, { title: "Network error", detail: String(err) });
    }
    const text = await response.text();
    const data = text ? JSON.parse(text) : null;
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  shows() {
    return this.call("GET", "/api/shows");
  }
  createShow(showId, title) {
    return this.call("POST", "/api/shows", { show_id: showId, title });
  }
  show(showId) {
    return this.call("GET", `/api/shows/${encodeURIComponent(showId)}`);
  }
  startShow(showId) {
    return this.call("POST", `/api/shows/${encodeURIComponent(showId)}/start`);
  }
  endShow(showId) {
    return this.call("POST", `/api/shows/${encodeURIComponent(showId)}/end`);
  }
  addDrop(showId, drop) {
    return this.call("POST", `/api/shows/${encodeURIComponent(showId)}/drops`, drop);
  }
  reorder(showId, dropIds) {
    return this.call("PUT", `/api/shows/${encodeURIComponent(showId)}/order`, { drop_ids: dropIds });
  }
  launch(dropId) {
    return this.call("POST", `/api/drops/${encodeURIComponent(dropId)}/launch`, {});
  }
  end(dropId) {
    return this.call("POST", `/api/drops/${encodeURIComponent(dropId)}/end`, { reason: "host" });
  }
  restock(dropId, delta, requestId, variant) {
    const body = { delta, request_id: requestId };
    if (variant) body.variant = variant; // required on a drop with variants
    return this.call("POST", `/api/drops/${encodeURIComponent(dropId)}/restock`, body);
  }
  viewerToken(showId, viewerId) {
    return this.call("POST", `/api/shows/${encodeURIComponent(showId)}/tokens`, { viewer_id: viewerId });
  }
}
