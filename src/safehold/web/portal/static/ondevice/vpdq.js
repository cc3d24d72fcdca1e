// vPDQ in the browser: demux the file (mp4.js / matroska.js), decode every frame
// with WebCodecs in presentation order, as FFmpeg does for safehold's Python side
// (src/safehold/media.py iter_video_frames), and hash the selected ones:
//
//   rate       = the stream's average frame rate, as FFmpeg derives it
//   frame_mod  = max(int(seconds_per_frame * rate), 1), seconds_per_frame = 1 / fps
//   selected   = decoded frames number 0, frame_mod, 2 * frame_mod, ...
//   timestamp  = round(number / rate, 3)
//
// Pixels: WebCodecs hands over the decoder's YUV planes (the same numbers FFmpeg's
// decoder produces: H.264, VP8, VP9 and AV1 decoding is exact by specification), and
// yuv.js converts them as libswscale does before PDQ.

import { MediaError } from "./errors.js";
import { openMp4 } from "./mp4.js";
import { openMatroska } from "./matroska.js";
import { lumaFromPixels, pdqFromLuma } from "./pdq.js";
import { av1Colour, avccColour, vp8Colour, vp9Colour } from "./bitstream.js";
import { avReduce, round3 } from "./timing.js";
import { supportedMatrix, yuvToLuma, yuvToLumaApprox } from "./yuv.js";

const READ_WINDOW = 8 * 1024 * 1024;
const MAX_QUEUE = 16;

/** Reads byte ranges of a Blob through a window, so samples are not read one by one. */
class RangeReader {
  constructor(blob) {
    this.blob = blob;
    this.start = 0;
    this.bytes = new Uint8Array(0);
  }

  async read(offset, size) {
    if (offset < 0 || offset + size > this.blob.size) {
      throw new MediaError("corrupt", "a video frame lies outside the file; it may be truncated");
    }
    if (offset < this.start || offset + size > this.start + this.bytes.length) {
      const end = Math.min(this.blob.size, offset + Math.max(size, READ_WINDOW));
      this.bytes = new Uint8Array(await this.blob.slice(offset, end).arrayBuffer());
      this.start = offset;
    }
    return this.bytes.subarray(offset - this.start, offset - this.start + size);
  }
}

async function demux(blob, format) {
  if (format === "mp4" || format === "mov") return mp4Stream(await openMp4(blob));
  if (format === "webm" || format === "mkv") return openMatroska(blob);
  throw new MediaError("unsupported_format", `${format} is not a video format`);
}

/** The decoding plan of an MP4 track: samples, rate, and which frames FFmpeg outputs. */
function mp4Stream(mp4) {
  const t = mp4.track;
  const samples = t.samples;
  if (!samples.length) throw new MediaError("corrupt", "the video stream has no frames");
  let rate = null;
  if (t.framesForFps > 0 && t.durationForFps > 0) {
    rate = avReduce(t.timescale * t.framesForFps, t.durationForFps, 2147483647);
  }
  // Edit list (mov.c mov_fix_index): frames presented before the first edit's media
  // time are decoded but not output; samples after its end are not read.
  let keep = null;
  const edits = (t.edits || []).filter((e) => e.mediaTime !== -1);
  if (edits.length >= 1) {
    const e = edits[0];
    const start = e.mediaTime;
    const end = e.duration && t.movieTimescale ? start + (e.duration * t.timescale) / t.movieTimescale : Infinity;
    keep = { start, end, multiple: edits.length > 1 };
  }
  return {
    format: "mp4",
    codec: t.codec,
    description: t.description,
    family: t.family,
    width: t.width,
    height: t.height,
    colr: t.colr,
    timescale: t.timescale,
    rate,
    samples,
    keep,
    duration: mp4.duration,
  };
}

/**
 * The matrix and range FFmpeg's decoder tags the frames with: from the bitstream
 * (H.264 SPS VUI, VP8/VP9 frame header, AV1 sequence header), else from the
 * container (MP4 colr, Matroska Colour), else unspecified (BT.601) and limited range.
 */
async function streamColour(stream, reader, warnings) {
  let c = { matrix: null, fullRange: null };
  const first = stream.samples.find((s) => s.key) || stream.samples[0];
  try {
    const head = async () => reader.read(first.offset, Math.min(first.size, 4096));
    if (stream.family === "h264") c = avccColour(stream.description);
    else if (stream.family === "vp9") c = vp9Colour(await head());
    else if (stream.family === "vp8") c = vp8Colour(await head());
    else if (stream.family === "av1") {
      const obus = stream.description && stream.description.length > 4 ? stream.description.subarray(4) : null;
      c = obus ? av1Colour(obus) : { matrix: null, fullRange: null };
      if (c.matrix === null) c = av1Colour(await head());
    } else warnings.add(`the colour matrix of ${stream.family} video is taken from the container`);
  } catch (e) {
    warnings.add("the colour information of the video could not be read; BT.601 assumed");
  }
  const colr = stream.colr || {};
  const matrix = c.matrix !== null && c.matrix !== undefined ? c.matrix : colr.matrix !== null && colr.matrix !== undefined ? colr.matrix : 2;
  const fullRange = c.fullRange !== null && c.fullRange !== undefined ? c.fullRange : colr.fullRange === true;
  return { matrix, fullRange };
}

const KNOWN_LAYOUTS = new Set([
  "I420",
  "I420A",
  "I422",
  "I422A",
  "NV12",
  "I444",
  "I444A",
  "I420P10",
  "I422P10",
  "I444P10",
  "I420P12",
  "I422P12",
  "I444P12",
]);

/** Copy a VideoFrame's planes and turn them into the float32 luma plane. */
async function frameLuma(frame, colour, warnings) {
  const width = frame.visibleRect ? frame.visibleRect.width : frame.displayWidth;
  const height = frame.visibleRect ? frame.visibleRect.height : frame.displayHeight;
  const format = frame.format;
  const { matrix, fullRange } = colour;
  if (!format || !KNOWN_LAYOUTS.has(format)) {
    // Opaque (GPU) frames or an unknown layout: let the browser convert to RGBA.
    try {
      const rgba = new Uint8Array(width * height * 4);
      await frame.copyTo(rgba, { format: "RGBA" });
      warnings.add("the browser converted the video frames to RGB itself; values are approximate");
      return { luma: lumaFromPixels(rgba, width, height, 4), width, height };
    } catch (e) {
      throw new MediaError("unsupported_browser", "this browser does not give access to decoded video pixels");
    }
  }
  const buffer = new Uint8Array(frame.allocationSize());
  const layout = await frame.copyTo(buffer);
  const plane = (i, Type = Uint8Array) =>
    new Type(buffer.buffer, layout[i].offset, (buffer.length - layout[i].offset) / Type.BYTES_PER_ELEMENT | 0);
  if (format === "I420" || format === "I420A" || format === "I422" || format === "I422A" || format === "NV12") {
    const chroma = format === "NV12" ? "nv12" : format.startsWith("I422") ? "422" : "420";
    const p = {
      y: plane(0),
      u: plane(1),
      v: format === "NV12" ? null : plane(2),
      yStride: layout[0].stride,
      uStride: layout[1].stride,
      vStride: format === "NV12" ? layout[1].stride : layout[2].stride,
    };
    if (chroma !== "422" && height & 1) {
      warnings.add("frames have an odd height: FFmpeg converts those with its general scaler; values are approximate");
    }
    return { luma: yuvToLuma(p, width, height, chroma, matrix, fullRange), width, height };
  }
  const approx = {
    I444: [0, 0, 8],
    I444A: [0, 0, 8],
    I420P10: [1, 1, 10],
    I422P10: [1, 0, 10],
    I444P10: [0, 0, 10],
    I420P12: [1, 1, 12],
    I422P12: [1, 0, 12],
    I444P12: [0, 0, 12],
  }[format];
  if (!approx) throw new MediaError("unsupported_codec", `decoded frames in ${format} layout are not supported`);
  const [sx, sy, depth] = approx;
  const Type = depth > 8 ? Uint16Array : Uint8Array;
  const el = Type.BYTES_PER_ELEMENT;
  const p = {
    y: plane(0, Type),
    u: plane(1, Type),
    v: plane(2, Type),
    yStride: layout[0].stride / el,
    uStride: layout[1].stride / el,
    vStride: layout[2].stride / el,
  };
  warnings.add(`frames are ${format}: FFmpeg converts those with its general scaler; values are approximate`);
  return { luma: yuvToLumaApprox(p, width, height, sx, sy, depth, matrix, fullRange), width, height };
}

/**
 * Hash a video. Returns {vpdq: [{frame, timestamp, pdq, quality}], width, height,
 * duration, frameRate, decodedFrames, warnings}.
 */
export async function hashVideo(blob, format, { fps = 1, onProgress = null, limits = {} } = {}) {
  if (typeof VideoDecoder === "undefined" || typeof EncodedVideoChunk === "undefined") {
    throw new MediaError("unsupported_browser", "this browser cannot decode video for hashing (no WebCodecs)");
  }
  if (!(fps >= 0) || !Number.isFinite(fps)) throw new MediaError("invalid_value", `fps must be 0 or positive, not ${fps}`);
  const stream = await demux(blob, format);
  if (!stream.rate || !(stream.rate.num > 0) || !(stream.rate.den > 0)) {
    throw new MediaError("corrupt", "the video declares no frame rate");
  }
  const maxPixels = limits.maxVideoPixels ?? 8192 * 4320;
  const maxSeconds = limits.maxVideoSeconds ?? 6 * 3600;
  const maxHashed = limits.maxHashedFrames ?? 50000;
  if (stream.width * stream.height > maxPixels) {
    throw new MediaError("too_many_pixels", `frames are ${stream.width}x${stream.height}; the limit is ${maxPixels} pixels`);
  }
  if (stream.duration && stream.duration > maxSeconds) {
    throw new MediaError("too_long", `the video lasts ${Math.round(stream.duration)} s; the limit is ${maxSeconds} s`);
  }
  const rate = stream.rate.num / stream.rate.den;
  const secondsPerFrame = fps === 0 ? 0 : 1 / fps;
  const frameMod = Math.max(Math.trunc(secondsPerFrame * rate), 1);
  const config = {
    codec: stream.codec,
    codedWidth: stream.width,
    codedHeight: stream.height,
    hardwareAcceleration: "prefer-software",
  };
  if (stream.description) config.description = stream.description;
  let support;
  try {
    support = await VideoDecoder.isConfigSupported(config);
  } catch (e) {
    support = { supported: false };
  }
  if (!support.supported) {
    delete config.hardwareAcceleration;
    try {
      support = await VideoDecoder.isConfigSupported(config);
    } catch (e) {
      support = { supported: false };
    }
  }
  if (!support.supported) {
    throw new MediaError("unsupported_codec", `this browser cannot decode ${stream.family || stream.codec} video (${stream.codec})`);
  }

  const warnings = new Set(stream.warnings || []);
  const reader = new RangeReader(blob);
  const colour = await streamColour(stream, reader, warnings);
  if (!supportedMatrix(colour.matrix)) {
    throw new MediaError("unsupported_codec", `the video's colour matrix (${colour.matrix}) cannot be converted (FFmpeg refuses it too)`);
  }
  const frames = [];
  let number = 0;
  let width = 0;
  let height = 0;
  let failure = null;
  let work = Promise.resolve();
  let pending = 0; // selected frames held, waiting to be converted and hashed
  const ptsOf = new Map(); // microsecond timestamp -> stream pts
  const total = stream.samples.length;

  const output = (frame) => {
    const pts = ptsOf.get(frame.timestamp);
    if (stream.keep && pts !== undefined && (pts < stream.keep.start || pts >= stream.keep.end)) {
      frame.close();
      return;
    }
    const n = number++;
    if (n === 0) {
      width = frame.visibleRect ? frame.visibleRect.width : frame.displayWidth;
      height = frame.visibleRect ? frame.visibleRect.height : frame.displayHeight;
    }
    if (n % frameMod !== 0 || failure) {
      frame.close();
      return;
    }
    if (frames.length + 1 > maxHashed) {
      failure = new MediaError("too_many_frames", `the video would give more than ${maxHashed} frame hashes; lower the frame rate`);
      frame.close();
      return;
    }
    pending++;
    work = work.then(async () => {
      try {
        if (failure) return;
        const { luma, width: w, height: h } = await frameLuma(frame, colour, warnings);
        frame.close();
        const { pdq, quality } = pdqFromLuma(luma, w, h);
        frames.push({ frame: n, timestamp: round3(n / rate), pdq, quality });
      } catch (e) {
        failure = failure || e;
      } finally {
        pending--;
        try {
          frame.close();
        } catch (e) {
          /* already closed */
        }
      }
    });
  };
  const decoder = new VideoDecoder({
    output,
    error: (e) => {
      failure = failure || new MediaError("corrupt", `the video cannot be decoded (${e && e.message ? e.message : e})`);
    },
  });
  decoder.configure(config);

  const keepEnd = stream.keep ? stream.keep.end : Infinity;
  let sawKey = false;
  let truncated = false;
  try {
    for (let i = 0; i < total; i++) {
      if (failure) break;
      const s = stream.samples[i];
      if (s.dts >= keepEnd && s.pts >= keepEnd) continue;
      if (!sawKey && !s.key) continue; // FFmpeg's decoder cannot start on a delta frame either
      sawKey = true;
      if (s.offset + s.size > blob.size) {
        truncated = true; // FFmpeg, too, stops at the first frame the file does not hold
        break;
      }
      const data = await reader.read(s.offset, s.size);
      const timestamp = Math.round((s.pts * 1e6) / stream.timescale);
      ptsOf.set(timestamp, s.pts);
      decoder.decode(new EncodedVideoChunk({ type: s.key ? "key" : "delta", timestamp, data }));
      while (decoder.decodeQueueSize > MAX_QUEUE && !failure) {
        await new Promise((resolve) => decoder.addEventListener("dequeue", resolve, { once: true }));
      }
      if (onProgress && (i & 15) === 0) onProgress({ phase: "video", done: i + 1, total, fraction: (i + 1) / total });
      if (pending > 2) await work; // hold few decoded frames (4K frames are 12 MB each)
    }
    if (!failure) await decoder.flush();
  } catch (e) {
    failure = failure || (e instanceof MediaError ? e : new MediaError("corrupt", `the video cannot be decoded (${e.message || e})`));
  } finally {
    await work;
    try {
      decoder.close();
    } catch (e) {
      /* closed after an error */
    }
  }
  if (failure && !(failure instanceof MediaError && failure.code === "corrupt" && frames.length)) throw failure;
  if (failure) warnings.add(`decoding stopped after frame ${number - 1}: ${failure.message}`);
  if (number === 0) throw new MediaError("corrupt", "no frame of the video could be decoded");
  if (stream.keep && stream.keep.multiple) warnings.add("the video has several edits; frame numbers may differ from FFmpeg's");
  if (truncated) {
    warnings.add(`only ${number} of the ${total} frames the file declares could be decoded; it may be truncated`);
  }
  if (onProgress) onProgress({ phase: "video", done: total, total, fraction: 1 });
  return {
    vpdq: frames,
    width: width || stream.width,
    height: height || stream.height,
    duration: stream.duration,
    frameRate: rate,
    decodedFrames: number,
    warnings: [...warnings],
  };
}
