// Hash one file where this code runs (the worker, or the page if there is no
// worker): MD5 of the bytes, then PDQ for a picture or vPDQ for a video. The same
// checks as safehold's Python side (src/safehold/media.py): the format is sniffed
// from the leading bytes (never the file name) against the same allow-list, sizes
// and pixel counts are limited before anything is decoded.

import { MediaError } from "./errors.js";
import { decodeLuma } from "./image.js";
import { md5Blob } from "./md5.js";
import { pdqFromLuma } from "./pdq.js";
import { hashVideo } from "./vpdq.js";

const MiB = 1024 * 1024;

export const DEFAULT_LIMITS = Object.freeze({
  maxImageBytes: 256 * MiB,
  maxVideoBytes: 4096 * MiB,
  maxPixels: 50_000_000,
  maxVideoPixels: 8192 * 4320,
  maxVideoSeconds: 6 * 3600,
  maxHashedFrames: 50_000,
});

const FORMATS = {
  jpeg: ["image", "image/jpeg"],
  png: ["image", "image/png"],
  gif: ["image", "image/gif"],
  webp: ["image", "image/webp"],
  bmp: ["image", "image/bmp"],
  tiff: ["image", "image/tiff"],
  heic: ["image", "image/heic"],
  avif: ["image", "image/avif"],
  mp4: ["video", "video/mp4"],
  mov: ["video", "video/quicktime"],
  webm: ["video", "video/webm"],
  mkv: ["video", "video/x-matroska"],
};
export const ALLOWED_FORMATS = Object.freeze(Object.keys(FORMATS));
// Allowed formats Chromium and Firefox cannot decode (Safari can; then with a warning).
const BROWSER_CANNOT = { tiff: "TIFF", heic: "HEIC/HEIF" };

const AVIF = ["avif", "avis"];
const HEIF = ["heic", "heix", "hevc", "hevx", "heim", "heis", "hevm", "hevs"];
const HEIF_GENERIC = ["mif1", "msf1", "mif2"];
const QUICKTIME_ATOMS = ["moov", "mdat", "wide", "free", "skip", "pnot"];

function ascii(b, i, n) {
  let s = "";
  for (let k = 0; k < n && i + k < b.length; k++) s += String.fromCharCode(b[i + k]);
  return s;
}

function startsWith(b, bytes) {
  if (b.length < bytes.length) return false;
  for (let i = 0; i < bytes.length; i++) if (b[i] !== bytes[i]) return false;
  return true;
}

function sniffFtyp(head) {
  const size = ((head[0] << 24) | (head[1] << 16) | (head[2] << 8) | head[3]) >>> 0;
  const major = ascii(head, 8, 4);
  const end = Math.min(head.length, size >= 16 ? size : head.length);
  const brands = new Set([major]);
  for (let i = 16; i < end - 3; i += 4) brands.add(ascii(head, i, 4));
  const any = (list) => list.some((x) => brands.has(x));
  if (AVIF.includes(major) || (HEIF_GENERIC.includes(major) && any(AVIF))) return "avif";
  if (HEIF.includes(major) || (HEIF_GENERIC.includes(major) && any(HEIF))) return "heic";
  if (HEIF_GENERIC.includes(major)) return "heic";
  if (major === "qt  ") return "mov";
  return "mp4";
}

/** safehold.media.sniff: the allow-listed format of the leading bytes, or null. */
export function sniff(head) {
  if (startsWith(head, [0xff, 0xd8, 0xff])) return "jpeg";
  if (startsWith(head, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return "png";
  const six = ascii(head, 0, 6);
  if (six === "GIF87a" || six === "GIF89a") return "gif";
  if (ascii(head, 0, 4) === "RIFF" && ascii(head, 8, 4) === "WEBP") return "webp";
  if (ascii(head, 0, 2) === "BM" && head.length >= 26) return "bmp";
  const four = ascii(head, 0, 4);
  if (four === "II*\u0000" || four === "MM\u0000*") return "tiff";
  if (startsWith(head, [0x1a, 0x45, 0xdf, 0xa3])) return ascii(head, 0, 64).includes("webm") ? "webm" : "mkv";
  if (head.length >= 12 && ascii(head, 4, 4) === "ftyp") return sniffFtyp(head);
  if (head.length >= 8 && QUICKTIME_ATOMS.includes(ascii(head, 4, 4))) return "mov";
  return null;
}

const HEAD_BYTES = 1024 * 1024;

/**
 * Hash a File/Blob. Returns for a picture {kind: "image", format, size, md5, pdq,
 * quality, width, height, warnings} and for a video {kind: "video", format, size,
 * md5, vpdq: [{frame, timestamp, pdq, quality}], width, height, duration,
 * frameRate, warnings}. Throws MediaError (with .code) for what cannot be hashed.
 */
export async function hashBlob(blob, { fps = 1, onProgress = null, limits = {}, webgl = true } = {}) {
  const lim = { ...DEFAULT_LIMITS, ...(limits || {}) };
  const progress = (phase, fraction) => {
    if (onProgress) onProgress({ phase, fraction: Math.max(0, Math.min(1, fraction)) });
  };
  if (!blob || typeof blob.size !== "number" || typeof blob.slice !== "function") {
    throw new MediaError("invalid_value", "hashFile needs a File or Blob");
  }
  const size = blob.size;
  if (size === 0) throw new MediaError("empty", "the file is empty (0 bytes); nothing to hash");
  let head;
  try {
    head = new Uint8Array(await blob.slice(0, Math.min(size, HEAD_BYTES)).arrayBuffer());
  } catch (e) {
    throw new MediaError("unreadable", "the file cannot be read (it may have been moved or deleted)");
  }
  const format = sniff(head.subarray(0, 64));
  if (!format) {
    throw new MediaError(
      "unsupported_format",
      `this is not an allowed picture or video format (allowed: ${ALLOWED_FORMATS.join(", ")})`,
    );
  }
  const [kind] = FORMATS[format];
  const cap = kind === "image" ? lim.maxImageBytes : lim.maxVideoBytes;
  if (size > cap) throw new MediaError("too_large", `the file is ${size} bytes; the limit for ${kind}s is ${cap} bytes`);
  const md5Share = kind === "image" ? 0.3 : 0.2;
  progress("md5", 0);
  let md5;
  try {
    md5 = await md5Blob(blob, (done, total) => progress("md5", (md5Share * done) / total));
  } catch (e) {
    throw new MediaError("unreadable", "the file cannot be read (it may have been moved or deleted)");
  }
  if (kind === "image") {
    progress("decode", md5Share);
    let pic;
    try {
      pic = await decodeLuma(blob, format, head, { maxPixels: lim.maxPixels, webgl });
    } catch (e) {
      if (BROWSER_CANNOT[format] && e.code === "corrupt") {
        throw new MediaError(
          "unsupported_browser",
          `${BROWSER_CANNOT[format]} pictures cannot be decoded by this browser; save the picture as JPEG or PNG and hash that`,
        );
      }
      throw e;
    }
    if (BROWSER_CANNOT[format]) {
      pic.warnings.push(
        `this browser decoded the ${BROWSER_CANNOT[format]} picture itself; its pixels have not been checked against safehold's decoder, so the hash may differ by a few bits`,
      );
    }
    progress("pdq", 0.8);
    const { pdq, quality } = pdqFromLuma(pic.luma, pic.width, pic.height, pic.scratch);
    progress("done", 1);
    return { kind, format, size, md5, pdq, quality, width: pic.width, height: pic.height, warnings: pic.warnings };
  }
  const video = await hashVideo(blob, format, {
    fps,
    limits: lim,
    onProgress: (p) => progress("video", md5Share + (1 - md5Share) * p.fraction),
  });
  progress("done", 1);
  return {
    kind,
    format,
    size,
    md5,
    vpdq: video.vpdq,
    width: video.width,
    height: video.height,
    duration: video.duration,
    frameRate: video.frameRate,
    warnings: video.warnings,
  };
}
