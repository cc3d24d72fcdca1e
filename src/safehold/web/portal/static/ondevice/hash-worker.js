// The worker that hashes files for hash.js, so that the page stays responsive.
// Messages in: {id, file, fps, limits, webgl}. Out: {type: "ready"}, {id, type: "progress",
// progress}, {id, type: "result", result} or {id, type: "error", code, message}.

import { hashBlob } from "./core.js";

self.onmessage = async (event) => {
  const { id, file, fps, limits, webgl } = event.data || {};
  try {
    const result = await hashBlob(file, {
      fps,
      limits,
      webgl,
      onProgress: (progress) => self.postMessage({ id, type: "progress", progress }),
    });
    self.postMessage({ id, type: "result", result });
  } catch (err) {
    self.postMessage({
      id,
      type: "error",
      code: (err && err.code) || "error",
      message: (err && err.message) || String(err),
    });
  }
};

self.postMessage({ type: "ready" });
