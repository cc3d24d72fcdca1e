// "Hash it on your device": PDQ (+ quality) and MD5 of a picture, vPDQ of a video,
// computed in the browser, equal to what safehold computes in Python
// (safehold.hashing.hash_file). Only the hashes need to leave the device.
//
//   import { hashFile } from "/report/static/ondevice/hash.js";
//   const result = await hashFile(file, { fps: 1, onProgress: (p) => show(p.fraction) });
//
// The work runs in a module Web Worker (hash-worker.js) so the page does not freeze;
// where a worker cannot be started it runs on the page instead. See docs/ondevice.md.

import { MediaError } from "./errors.js";

export { MediaError };
export { ALLOWED_FORMATS, DEFAULT_LIMITS, sniff } from "./core.js";

const READY_TIMEOUT_MS = 10000;
let workerPromise = null;
let queue = Promise.resolve();
let nextId = 1;

function startWorker() {
  return new Promise((resolve) => {
    let worker;
    try {
      worker = new Worker(new URL("./hash-worker.js", import.meta.url), { type: "module" });
    } catch (e) {
      resolve(null);
      return;
    }
    const fail = () => {
      clearTimeout(timer);
      worker.removeEventListener("message", ready);
      worker.removeEventListener("error", fail);
      worker.terminate();
      resolve(null);
    };
    const ready = (event) => {
      if (!event.data || event.data.type !== "ready") return;
      clearTimeout(timer);
      worker.removeEventListener("message", ready);
      worker.removeEventListener("error", fail);
      // A worker that fails later (out of memory, say) is replaced on the next call.
      worker.addEventListener("error", () => {
        workerPromise = null;
        worker.terminate();
      });
      resolve(worker);
    };
    const timer = setTimeout(fail, READY_TIMEOUT_MS);
    worker.addEventListener("message", ready);
    worker.addEventListener("error", fail);
  });
}

function getWorker() {
  if (!workerPromise) workerPromise = startWorker();
  return workerPromise;
}

function abortError() {
  const e = new MediaError("aborted", "hashing was cancelled");
  e.name = "AbortError";
  return e;
}

function runInWorker(worker, file, fps, limits, webgl, onProgress, signal) {
  return new Promise((resolve, reject) => {
    const id = nextId++;
    const onMessage = (event) => {
      const m = event.data || {};
      if (m.id !== id) return;
      if (m.type === "progress") {
        if (onProgress) onProgress(m.progress);
        return;
      }
      cleanup();
      if (m.type === "result") resolve(m.result);
      else reject(new MediaError(m.code || "error", m.message || "the file could not be hashed"));
    };
    const onError = (event) => {
      cleanup();
      workerPromise = null;
      worker.terminate();
      reject(new MediaError("error", `hashing failed in the worker (${(event && event.message) || "unknown error"})`));
    };
    const onAbort = () => {
      cleanup();
      workerPromise = null;
      worker.terminate();
      reject(abortError());
    };
    function cleanup() {
      worker.removeEventListener("message", onMessage);
      worker.removeEventListener("error", onError);
      if (signal) signal.removeEventListener("abort", onAbort);
    }
    worker.addEventListener("message", onMessage);
    worker.addEventListener("error", onError);
    if (signal) signal.addEventListener("abort", onAbort, { once: true });
    worker.postMessage({ id, file, fps, limits, webgl });
  });
}

/**
 * Hash a File (or Blob) on this device.
 *
 * Options: fps (vPDQ frames per second of video, 0 = every frame; default 1),
 * onProgress({phase, fraction}) with fraction 0..1, limits (see DEFAULT_LIMITS),
 * signal (an AbortSignal), useWorker (default true), webgl (default true: read
 * partly transparent pictures through WebGL, which is exact; false for the
 * premultiplied canvas, a few bits off).
 *
 * Resolves to {kind: "image", md5, pdq, quality, width, height, format, size,
 * warnings} or {kind: "video", md5, vpdq: [{frame, timestamp, pdq, quality}], width,
 * height, duration, frameRate, format, size, warnings}. Rejects with a MediaError
 * whose .code says why (empty, unsupported_format, unsupported_browser,
 * unsupported_codec, too_large, too_many_pixels, too_long, too_many_frames, corrupt,
 * unreadable, aborted).
 */
export async function hashFile(
  file,
  { fps = 1, onProgress = null, limits = null, signal = null, useWorker = true, webgl = true } = {},
) {
  const job = queue.then(async () => {
    if (signal && signal.aborted) throw abortError();
    const worker = useWorker && typeof Worker !== "undefined" ? await getWorker() : null;
    if (worker) return runInWorker(worker, file, fps, limits, webgl, onProgress, signal);
    const { hashBlob } = await import("./core.js");
    return hashBlob(file, { fps, onProgress, limits, webgl });
  });
  queue = job.catch(() => undefined);
  return await job;
}

/** Where hashFile does the work: "worker", or "page" when no worker could be started. */
export async function runsIn() {
  const worker = typeof Worker !== "undefined" ? await getWorker() : null;
  return worker ? "worker" : "page";
}

/** What this browser can hash: {images, video}. */
export function capabilities() {
  const images = typeof createImageBitmap !== "undefined" && typeof OffscreenCanvas !== "undefined";
  const video = typeof VideoDecoder !== "undefined" && typeof EncodedVideoChunk !== "undefined";
  return { images, video };
}
