// A small Matroska / WebM demuxer for the first video track: the blocks in file
// (decoding) order with their presentation times, the codec configuration WebCodecs
// needs, and the average frame rate as FFmpeg's libavformat/matroskadec.c derives it
// (from DefaultDuration: av_reduce(1e9, default_duration, 30000)).

import { MediaError } from "./errors.js";
import { avReduce } from "./timing.js";

const ID = {
  EBML: 0x1a45dfa3,
  DocType: 0x4282,
  Segment: 0x18538067,
  SeekHead: 0x114d9b74,
  Info: 0x1549a966,
  TimecodeScale: 0x2ad7b1,
  Duration: 0x4489,
  Tracks: 0x1654ae6b,
  TrackEntry: 0xae,
  TrackNumber: 0xd7,
  TrackType: 0x83,
  CodecID: 0x86,
  CodecPrivate: 0x63a2,
  DefaultDuration: 0x23e383,
  Video: 0xe0,
  PixelWidth: 0xb0,
  PixelHeight: 0xba,
  Colour: 0x55b0,
  MatrixCoefficients: 0x55b1,
  Range: 0x55b9,
  ContentEncodings: 0x6d80,
  Cluster: 0x1f43b675,
  Timecode: 0xe7,
  SimpleBlock: 0xa3,
  BlockGroup: 0xa0,
  Block: 0xa1,
  ReferenceBlock: 0xfb,
  Cues: 0x1c53bb6b,
  Tags: 0x1254c367,
  Chapters: 0x1043a770,
  Attachments: 0x1941a469,
  Void: 0xec,
};

const SEGMENT_CHILDREN = new Set([ID.SeekHead, ID.Info, ID.Tracks, ID.Cluster, ID.Cues, ID.Tags, ID.Chapters, ID.Attachments]);
const UNKNOWN = -1;
const WINDOW = 4 * 1024 * 1024;
const MAX_HEADER_ELEMENT = 64 * 1024 * 1024;

/** Sequential-ish reads of a Blob through a window. */
class Reader {
  constructor(blob) {
    this.blob = blob;
    this.size = blob.size;
    this.start = 0;
    this.bytes = new Uint8Array(0);
  }

  async ensure(at, n) {
    if (at >= this.start && at + n <= this.start + this.bytes.length) return;
    const end = Math.min(this.size, at + Math.max(n, WINDOW));
    this.bytes = new Uint8Array(await this.blob.slice(at, end).arrayBuffer());
    this.start = at;
  }

  async bytesAt(at, n) {
    await this.ensure(at, n);
    if (at + n > this.start + this.bytes.length) throw new MediaError("corrupt", "the video file is truncated");
    return this.bytes.subarray(at - this.start, at - this.start + n);
  }

  /** An element header at `at`: {id, size (UNKNOWN for unknown size), data (offset)}. */
  async header(at) {
    if (at >= this.size) return null;
    const b = await this.bytesAt(at, Math.min(12, this.size - at));
    const first = b[0];
    let len = 1;
    while (len <= 4 && !(first & (0x80 >> (len - 1)))) len++;
    if (len > 4 || len > b.length) throw new MediaError("corrupt", "the video file has a broken element header");
    let id = 0;
    for (let i = 0; i < len; i++) id = id * 256 + b[i];
    const s0 = b[len];
    let slen = 1;
    while (slen <= 8 && !(s0 & (0x80 >> (slen - 1)))) slen++;
    if (slen > 8 || len + slen > b.length) throw new MediaError("corrupt", "the video file has a broken element size");
    let size = s0 & (0xff >> slen);
    let allOnes = size === 0xff >> slen;
    for (let i = 1; i < slen; i++) {
      const v = b[len + i];
      if (v !== 0xff) allOnes = false;
      size = size * 256 + v;
    }
    return { id, size: allOnes ? UNKNOWN : size, data: at + len + slen };
  }
}

function uint(b) {
  let v = 0;
  for (let i = 0; i < b.length; i++) v = v * 256 + b[i];
  return v;
}

function float(b) {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (b.length === 4) return dv.getFloat32(0);
  if (b.length === 8) return dv.getFloat64(0);
  return 0;
}

function text(b) {
  let s = "";
  for (let i = 0; i < b.length && b[i]; i++) s += String.fromCharCode(b[i]);
  return s;
}

/** Children of an element held in memory. */
function* elements(b, start = 0, end = b.length) {
  let at = start;
  while (at < end) {
    const first = b[at];
    let len = 1;
    while (len <= 4 && !(first & (0x80 >> (len - 1)))) len++;
    if (len > 4) return;
    let id = 0;
    for (let i = 0; i < len; i++) id = id * 256 + b[at + i];
    const s0 = b[at + len];
    let slen = 1;
    while (slen <= 8 && !(s0 & (0x80 >> (slen - 1)))) slen++;
    if (slen > 8) return;
    let size = s0 & (0xff >> slen);
    for (let i = 1; i < slen; i++) size = size * 256 + b[at + len + i];
    const data = at + len + slen;
    if (data + size > end) throw new MediaError("corrupt", "a Matroska element runs past its parent");
    yield { id, data, size, body: b.subarray(data, data + size) };
    at = data + size;
  }
}

function parseTrack(b) {
  const t = { number: 0, type: 0, codecId: "", codecPrivate: null, defaultDuration: 0, width: 0, height: 0, colr: null, encoded: false };
  for (const e of elements(b)) {
    if (e.id === ID.TrackNumber) t.number = uint(e.body);
    else if (e.id === ID.TrackType) t.type = uint(e.body);
    else if (e.id === ID.CodecID) t.codecId = text(e.body);
    else if (e.id === ID.CodecPrivate) t.codecPrivate = new Uint8Array(e.body);
    else if (e.id === ID.DefaultDuration) t.defaultDuration = uint(e.body);
    else if (e.id === ID.ContentEncodings) t.encoded = true;
    else if (e.id === ID.Video) {
      for (const v of elements(e.body)) {
        if (v.id === ID.PixelWidth) t.width = uint(v.body);
        else if (v.id === ID.PixelHeight) t.height = uint(v.body);
        else if (v.id === ID.Colour) {
          const c = { matrix: 2, fullRange: null };
          for (const k of elements(v.body)) {
            if (k.id === ID.MatrixCoefficients) c.matrix = uint(k.body);
            else if (k.id === ID.Range) c.fullRange = uint(k.body) === 2 ? true : uint(k.body) === 1 ? false : null;
          }
          t.colr = c;
        }
      }
    }
  }
  return t;
}

function codecOf(t) {
  const id = t.codecId;
  if (id === "V_VP8") return { codec: "vp8", family: "vp8", description: null };
  if (id === "V_VP9") return { codec: "vp09.00.10.08", family: "vp9", description: null };
  if (id === "V_AV1") {
    const d = t.codecPrivate;
    if (d && d.length >= 4) {
      const depth = (d[2] >> 6) & 1 ? ((d[2] >> 5) & 1 ? 12 : 10) : 8;
      const codec = `av01.${d[1] >> 5}.${String(d[1] & 31).padStart(2, "0")}${d[2] >> 7 ? "H" : "M"}.${String(depth).padStart(2, "0")}`;
      return { codec, family: "av1", description: d };
    }
    return { codec: "av01.0.08M.08", family: "av1", description: null };
  }
  if (id === "V_MPEG4/ISO/AVC") {
    const d = t.codecPrivate;
    if (!d || d.length < 4) throw new MediaError("corrupt", "the H.264 track has no configuration");
    const h = (v) => v.toString(16).padStart(2, "0");
    return { codec: `avc1.${h(d[1])}${h(d[2])}${h(d[3])}`, family: "h264", description: d };
  }
  throw new MediaError("unsupported_codec", `the video codec ${id || "(none)"} cannot be decoded in the browser (H.264, VP8, VP9 and AV1 can)`);
}

/** Frame rate when there is no DefaultDuration: FFmpeg estimates it from the first
 * packets and rounds it to a standard rate within 1 % (avformat_find_stream_info). */
function estimateRate(pts, timecodeScale) {
  const sorted = pts.slice(0, 64).sort((a, b) => a - b);
  if (sorted.length < 2) return null;
  const span = ((sorted[sorted.length - 1] - sorted[0]) * timecodeScale) / 1e9;
  if (!(span > 0)) return null;
  const estimate = (sorted.length - 1) / span;
  let best = 0;
  let bestError = 0.01;
  const std = [];
  for (let i = 0; i < 30 * 12; i++) std.push((i + 1) * 1001);
  for (let i = 0; i < 30; i++) std.push((i + 31) * 1001 * 12);
  for (const v of [80, 120, 240]) std.push(v * 1001 * 12);
  for (const v of [24, 30, 60, 12, 15, 48]) std.push(v * 1000 * 12);
  for (const s of std) {
    const error = Math.abs(estimate / (s / (12 * 1001)) - 1);
    if (error < bestError) {
      bestError = error;
      best = s;
    }
  }
  if (best) return avReduce(best, 12 * 1001, 2147483647);
  return avReduce(Math.round(estimate * 1001), 1001, 60000);
}

/** Open a Matroska / WebM file; the same plan shape as mp4Stream in vpdq.js. */
export async function openMatroska(blob) {
  const r = new Reader(blob);
  const ebml = await r.header(0);
  if (!ebml || ebml.id !== ID.EBML) throw new MediaError("corrupt", "not a Matroska file");
  let at = ebml.data + (ebml.size === UNKNOWN ? 0 : ebml.size);
  let segment = await r.header(at);
  while (segment && segment.id !== ID.Segment) {
    if (segment.size === UNKNOWN) throw new MediaError("corrupt", "the Matroska file has no segment");
    at = segment.data + segment.size;
    segment = await r.header(at);
  }
  if (!segment) throw new MediaError("corrupt", "the Matroska file has no segment");
  const segEnd = segment.size === UNKNOWN ? r.size : Math.min(r.size, segment.data + segment.size);
  let timecodeScale = 1000000;
  let duration = null;
  let track = null;
  const samples = [];
  const warnings = [];
  at = segment.data;
  while (at < segEnd) {
    const el = await r.header(at);
    if (!el) break;
    if (el.id === ID.Cluster) {
      at = await readCluster(r, el, segEnd, track, samples, timecodeScale);
      continue;
    }
    if (el.size === UNKNOWN) throw new MediaError("corrupt", "a Matroska element has an unknown size");
    if (el.id === ID.Info || el.id === ID.Tracks) {
      if (el.size > MAX_HEADER_ELEMENT) throw new MediaError("too_large", "the Matroska header is too large");
      const body = new Uint8Array(await r.bytesAt(el.data, el.size));
      if (el.id === ID.Info) {
        let rawDuration = null;
        for (const e of elements(body)) {
          if (e.id === ID.TimecodeScale) timecodeScale = uint(e.body);
          else if (e.id === ID.Duration) rawDuration = float(e.body);
        }
        if (rawDuration !== null) duration = (rawDuration * timecodeScale) / 1e9;
      } else if (!track) {
        for (const e of elements(body)) {
          if (e.id !== ID.TrackEntry) continue;
          const t = parseTrack(e.body);
          if (t.type === 1) {
            track = t;
            break;
          }
        }
      }
    }
    at = el.data + el.size;
  }
  if (!track) throw new MediaError("corrupt", "the file has no video stream");
  if (track.encoded) throw new MediaError("unsupported_format", "the video track is compressed or encrypted inside the file");
  if (!samples.length) throw new MediaError("corrupt", "the video stream has no frames");
  const codec = codecOf(track);
  let rate = null;
  if (track.defaultDuration) rate = avReduce(1000000000, track.defaultDuration, 30000);
  else {
    rate = estimateRate(samples.map((s) => s.pts), timecodeScale);
    warnings.push("the file declares no frame rate; it was estimated as FFmpeg does, and frame times may differ");
  }
  return {
    format: "matroska",
    codec: codec.codec,
    description: codec.description,
    family: codec.family,
    width: track.width,
    height: track.height,
    colr: track.colr,
    timescale: 1e9 / timecodeScale,
    rate,
    samples,
    keep: null,
    duration,
    warnings,
  };
}

async function readCluster(r, cluster, segEnd, track, samples, timecodeScale) {
  const end = cluster.size === UNKNOWN ? segEnd : Math.min(segEnd, cluster.data + cluster.size);
  let at = cluster.data;
  let clusterTime = 0;
  while (at < end) {
    const el = await r.header(at);
    if (!el) break;
    if (cluster.size === UNKNOWN && (SEGMENT_CHILDREN.has(el.id) || el.id === ID.EBML)) return at;
    if (el.size === UNKNOWN) throw new MediaError("corrupt", "a Matroska block has an unknown size");
    if (el.id === ID.Timecode) clusterTime = uint(await r.bytesAt(el.data, el.size));
    else if (track && (el.id === ID.SimpleBlock || el.id === ID.BlockGroup)) {
      let blockAt = el.data;
      let blockSize = el.size;
      let key = null;
      if (el.id === ID.BlockGroup) {
        const body = await r.bytesAt(el.data, el.size);
        let found = null;
        key = true;
        for (const e of elements(body)) {
          if (e.id === ID.Block) found = e;
          else if (e.id === ID.ReferenceBlock) key = false;
        }
        if (!found) {
          at = el.data + el.size;
          continue;
        }
        blockAt = el.data + found.data;
        blockSize = found.size;
      }
      const head = await r.bytesAt(blockAt, Math.min(blockSize, 12));
      let tlen = 1;
      while (tlen <= 8 && !(head[0] & (0x80 >> (tlen - 1)))) tlen++;
      let number = head[0] & (0xff >> tlen);
      for (let i = 1; i < tlen; i++) number = number * 256 + head[i];
      if (number === track.number) {
        const rel = (head[tlen] << 24) >> 16 | head[tlen + 1]; // int16
        const flags = head[tlen + 2];
        if (flags & 0x06) throw new MediaError("unsupported_format", "laced video blocks are not supported");
        if (key === null) key = (flags & 0x80) !== 0;
        const hdr = tlen + 3;
        samples.push({ offset: blockAt + hdr, size: blockSize - hdr, pts: clusterTime + rel, dts: clusterTime + rel, key });
      }
    }
    at = el.data + el.size;
  }
  return end;
}
