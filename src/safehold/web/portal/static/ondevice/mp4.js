// A small ISO base media file (MP4 / MOV) demuxer for the first video track: the
// sample table (offsets, sizes, decode and presentation times, key frames), the
// codec configuration WebCodecs needs, and the values FFmpeg derives from the same
// boxes (libavformat/mov.c): the average frame rate and the edit list.
//
// Only the boxes are read (a few kilobytes to a few megabytes); sample data is read
// later, slice by slice, by whoever decodes.

import { MediaError } from "./errors.js";

const MAX_MOOV_BYTES = 512 * 1024 * 1024;
const MAX_TOP_BOXES = 100000;

function fourcc(dv, at) {
  return String.fromCharCode(dv.getUint8(at), dv.getUint8(at + 1), dv.getUint8(at + 2), dv.getUint8(at + 3));
}

function u64(dv, at) {
  const hi = dv.getUint32(at);
  const lo = dv.getUint32(at + 4);
  if (hi >= 0x200000) throw new MediaError("corrupt", "a 64-bit value in the MP4 index is too large");
  return hi * 4294967296 + lo;
}

function i64(dv, at) {
  const hi = dv.getInt32(at);
  const lo = dv.getUint32(at + 4);
  return hi * 4294967296 + lo;
}

/** The child boxes of [start, end) of a DataView: {type, start, end, header}. */
function* boxes(dv, start, end) {
  let at = start;
  while (at + 8 <= end) {
    let size = dv.getUint32(at);
    const type = fourcc(dv, at + 4);
    let header = 8;
    if (size === 1) {
      if (at + 16 > end) break;
      size = u64(dv, at + 8);
      header = 16;
    } else if (size === 0) {
      size = end - at;
    }
    if (size < header || at + size > end) {
      throw new MediaError("corrupt", `the MP4 box '${type}' runs past its parent`);
    }
    yield { type, start: at + header, end: at + size, header };
    at += size;
  }
}

function child(dv, box, type) {
  for (const b of boxes(dv, box.start, box.end)) if (b.type === type) return b;
  return null;
}

function path(dv, box, ...types) {
  let b = box;
  for (const t of types) {
    b = b && child(dv, b, t);
    if (!b) return null;
  }
  return b;
}

/** Find the top-level boxes of the file without reading their contents. */
async function topLevel(blob) {
  const out = [];
  let at = 0;
  const size = blob.size;
  while (at + 8 <= size && out.length < MAX_TOP_BOXES) {
    const dv = new DataView(await blob.slice(at, Math.min(size, at + 16)).arrayBuffer());
    let boxSize = dv.getUint32(0);
    const type = fourcc(dv, 4);
    let header = 8;
    if (boxSize === 1) {
      if (dv.byteLength < 16) break;
      boxSize = u64(dv, 8);
      header = 16;
    } else if (boxSize === 0) {
      boxSize = size - at;
    }
    if (boxSize < header) throw new MediaError("corrupt", `the MP4 file has a broken '${type}' box`);
    out.push({ type, offset: at, size: boxSize, header, truncated: at + boxSize > size });
    at += boxSize;
  }
  return out;
}

function hex2(v) {
  return v.toString(16).padStart(2, "0");
}

/** RFC 6381 codec string of an HEVC configuration record (ISO/IEC 14496-15 E.3). */
function hevcCodec(sampleType, dv, c) {
  const b1 = dv.getUint8(c.start + 1);
  const space = ["", "A", "B", "C"][b1 >> 6];
  const tier = (b1 >> 5) & 1 ? "H" : "L";
  const profile = b1 & 31;
  let compat = dv.getUint32(c.start + 2);
  let reversed = 0;
  for (let i = 0; i < 32; i++) {
    reversed = (reversed << 1) | (compat & 1);
    compat >>>= 1;
  }
  const level = dv.getUint8(c.start + 12);
  const cons = [];
  for (let i = 0; i < 6; i++) cons.push(dv.getUint8(c.start + 6 + i));
  while (cons.length && cons[cons.length - 1] === 0) cons.pop();
  let s = `${sampleType}.${space}${profile}.${(reversed >>> 0).toString(16)}.${tier}${level}`;
  for (const v of cons) s += "." + v.toString(16);
  return s;
}

function codecConfig(dv, entry) {
  const type = entry.type;
  // VisualSampleEntry: 8 bytes SampleEntry + 70 bytes of visual fields, then boxes.
  const width = dv.getUint16(entry.start + 24);
  const height = dv.getUint16(entry.start + 26);
  const kids = { start: entry.start + 78, end: entry.end };
  const find = (t) => (kids.start < kids.end ? child(dv, kids, t) : null);
  const copy = (b) => new Uint8Array(dv.buffer.slice(dv.byteOffset + b.start, dv.byteOffset + b.end));
  let codec = null;
  let description = null;
  let family = null;
  if (type === "avc1" || type === "avc3") {
    const c = find("avcC");
    if (!c) throw new MediaError("corrupt", "the H.264 track has no configuration (avcC)");
    description = copy(c);
    codec = `avc1.${hex2(description[1])}${hex2(description[2])}${hex2(description[3])}`;
    family = "h264";
  } else if (type === "hvc1" || type === "hev1") {
    const c = find("hvcC");
    if (!c) throw new MediaError("corrupt", "the HEVC track has no configuration (hvcC)");
    description = copy(c);
    codec = hevcCodec(type, dv, c);
    family = "hevc";
  } else if (type === "vp09") {
    const c = find("vpcC");
    if (!c) throw new MediaError("corrupt", "the VP9 track has no configuration (vpcC)");
    const v = copy(c); // FullBox: version, flags, then the record
    codec = `vp09.${String(v[4]).padStart(2, "0")}.${String(v[5]).padStart(2, "0")}.${String(v[6] >> 4).padStart(2, "0")}`;
    family = "vp9";
  } else if (type === "vp08") {
    codec = "vp8";
    family = "vp8";
  } else if (type === "av01") {
    const c = find("av1C");
    if (!c) throw new MediaError("corrupt", "the AV1 track has no configuration (av1C)");
    description = copy(c);
    const profile = description[1] >> 5;
    const level = description[1] & 31;
    const tier = description[2] >> 7 ? "H" : "M";
    const high = (description[2] >> 6) & 1;
    const twelve = (description[2] >> 5) & 1;
    const depth = high ? (twelve ? 12 : 10) : 8;
    codec = `av01.${profile}.${String(level).padStart(2, "0")}${tier}.${String(depth).padStart(2, "0")}`;
    family = "av1";
  } else {
    throw new MediaError(
      "unsupported_codec",
      `the video codec '${type.trim()}' cannot be decoded in the browser (H.264, VP8, VP9 and AV1 can)`,
    );
  }
  let colr = null;
  const cb = find("colr");
  if (cb && cb.end - cb.start >= 11) {
    const kind = fourcc(dv, cb.start);
    if (kind === "nclx" || kind === "nclc") {
      colr = {
        primaries: dv.getUint16(cb.start + 4),
        transfer: dv.getUint16(cb.start + 6),
        matrix: dv.getUint16(cb.start + 8),
        fullRange: kind === "nclx" ? dv.getUint8(cb.start + 10) >> 7 === 1 : null,
      };
    }
  }
  return { sampleType: type, codec, description, family, width, height, colr };
}

function readSampleTable(dv, stbl, timescale) {
  const need = (t) => {
    const b = child(dv, stbl, t);
    if (!b) throw new MediaError("corrupt", `the video track has no '${t}' box`);
    return b;
  };
  // stsz / stz2: sample sizes
  let sizes;
  const stsz = child(dv, stbl, "stsz");
  if (stsz) {
    const fixed = dv.getUint32(stsz.start + 4);
    const count = dv.getUint32(stsz.start + 8);
    sizes = new Float64Array(count);
    if (fixed) sizes.fill(fixed);
    else {
      if (stsz.start + 12 + 4 * count > stsz.end) throw new MediaError("corrupt", "the MP4 sample size table is truncated");
      for (let i = 0; i < count; i++) sizes[i] = dv.getUint32(stsz.start + 12 + 4 * i);
    }
  } else {
    const stz2 = need("stz2");
    const field = dv.getUint8(stz2.start + 7);
    const count = dv.getUint32(stz2.start + 8);
    if (stz2.start + 12 + Math.ceil((count * field) / 8) > stz2.end) throw new MediaError("corrupt", "the MP4 sample size table is truncated");
    sizes = new Float64Array(count);
    for (let i = 0; i < count; i++) {
      if (field === 16) sizes[i] = dv.getUint16(stz2.start + 12 + 2 * i);
      else if (field === 8) sizes[i] = dv.getUint8(stz2.start + 12 + i);
      else {
        const byte = dv.getUint8(stz2.start + 12 + (i >> 1));
        sizes[i] = i & 1 ? byte & 15 : byte >> 4;
      }
    }
  }
  const n = sizes.length;
  // chunk offsets
  let chunkOffsets;
  const stco = child(dv, stbl, "stco");
  if (stco) {
    const count = dv.getUint32(stco.start + 4);
    if (stco.start + 8 + 4 * count > stco.end) throw new MediaError("corrupt", "the MP4 chunk table is truncated");
    chunkOffsets = new Float64Array(count);
    for (let i = 0; i < count; i++) chunkOffsets[i] = dv.getUint32(stco.start + 8 + 4 * i);
  } else {
    const co64 = need("co64");
    const count = dv.getUint32(co64.start + 4);
    if (co64.start + 8 + 8 * count > co64.end) throw new MediaError("corrupt", "the MP4 chunk table is truncated");
    chunkOffsets = new Float64Array(count);
    for (let i = 0; i < count; i++) chunkOffsets[i] = u64(dv, co64.start + 8 + 8 * i);
  }
  // sample-to-chunk
  const stsc = need("stsc");
  const scCount = dv.getUint32(stsc.start + 4);
  if (stsc.start + 8 + 12 * scCount > stsc.end) throw new MediaError("corrupt", "the MP4 sample-to-chunk table is truncated");
  const offsets = new Float64Array(n);
  let sample = 0;
  for (let e = 0; e < scCount && sample < n; e++) {
    const first = dv.getUint32(stsc.start + 8 + 12 * e) - 1;
    const perChunk = dv.getUint32(stsc.start + 8 + 12 * e + 4);
    const last = e + 1 < scCount ? dv.getUint32(stsc.start + 8 + 12 * (e + 1)) - 1 : chunkOffsets.length;
    for (let chunk = first; chunk < last && chunk < chunkOffsets.length && sample < n; chunk++) {
      let at = chunkOffsets[chunk];
      for (let k = 0; k < perChunk && sample < n; k++) {
        offsets[sample] = at;
        at += sizes[sample];
        sample++;
      }
    }
  }
  const located = sample;
  // decoding times (stts), as FFmpeg reads them for the average frame rate
  const stts = need("stts");
  const ttsCount = dv.getUint32(stts.start + 4);
  if (stts.start + 8 + 8 * ttsCount > stts.end) throw new MediaError("corrupt", "the MP4 time-to-sample table is truncated");
  const dts = new Float64Array(n);
  let t = 0;
  let i = 0;
  let durationForFps = 0;
  let framesForFps = 0;
  for (let e = 0; e < ttsCount; e++) {
    const count = dv.getUint32(stts.start + 8 + 8 * e);
    const delta = dv.getInt32(stts.start + 8 + 8 * e + 4);
    durationForFps += delta * count;
    framesForFps += count;
    for (let k = 0; k < count && i < n; k++) {
      dts[i++] = t;
      t += delta;
    }
  }
  for (; i < n; i++) dts[i] = t;
  // composition offsets (ctts, read as signed like FFmpeg)
  const cts = new Float64Array(n);
  const ctts = child(dv, stbl, "ctts");
  if (ctts) {
    const count = dv.getUint32(ctts.start + 4);
    if (ctts.start + 8 + 8 * count > ctts.end) throw new MediaError("corrupt", "the MP4 composition table is truncated");
    let j = 0;
    for (let e = 0; e < count && j < n; e++) {
      const c = dv.getUint32(ctts.start + 8 + 8 * e);
      const off = dv.getInt32(ctts.start + 8 + 8 * e + 4);
      for (let k = 0; k < c && j < n; k++) cts[j++] = off;
    }
  }
  // sync samples
  let keys = null;
  const stss = child(dv, stbl, "stss");
  if (stss) {
    const count = dv.getUint32(stss.start + 4);
    if (stss.start + 8 + 4 * count > stss.end) throw new MediaError("corrupt", "the MP4 sync sample table is truncated");
    keys = new Uint8Array(n);
    for (let e = 0; e < count; e++) {
      const s = dv.getUint32(stss.start + 8 + 4 * e) - 1;
      if (s >= 0 && s < n) keys[s] = 1;
    }
  }
  const samples = [];
  for (let s = 0; s < located; s++) {
    samples.push({
      offset: offsets[s],
      size: sizes[s],
      dts: dts[s],
      pts: dts[s] + cts[s],
      key: keys ? keys[s] === 1 : true,
    });
  }
  return { samples, durationForFps, framesForFps, timescale };
}

function readEditList(dv, trak, movieTimescale) {
  const elst = path(dv, trak, "edts", "elst");
  if (!elst) return null;
  const version = dv.getUint8(elst.start);
  const count = dv.getUint32(elst.start + 4);
  const edits = [];
  let at = elst.start + 8;
  for (let e = 0; e < count && at < elst.end; e++) {
    if (version === 1) {
      edits.push({ duration: u64(dv, at), mediaTime: i64(dv, at + 8), rate: dv.getInt16(at + 16) });
      at += 20;
    } else {
      edits.push({ duration: dv.getUint32(at), mediaTime: dv.getInt32(at + 4), rate: dv.getInt16(at + 8) });
      at += 12;
    }
  }
  return { edits, movieTimescale };
}

/**
 * Open an MP4 / MOV file and describe its first video track.
 *
 * Returns {brand, track: {codec, description, family, width, height, colr,
 * samples, timescale, durationForFps, framesForFps, edits}, duration}.
 */
export async function openMp4(blob) {
  const top = await topLevel(blob);
  const moovBox = top.find((b) => b.type === "moov");
  if (!moovBox) throw new MediaError("corrupt", "the MP4 file has no index (moov box); it may be truncated");
  if (moovBox.truncated) throw new MediaError("corrupt", "the MP4 index (moov box) is truncated");
  if (moovBox.size > MAX_MOOV_BYTES) throw new MediaError("too_large", "the MP4 index is too large");
  const fragmented = top.some((b) => b.type === "moof");
  const buf = await blob.slice(moovBox.offset, moovBox.offset + moovBox.size).arrayBuffer();
  const dv = new DataView(buf);
  const moov = { start: moovBox.header, end: buf.byteLength };
  const mvhd = child(dv, moov, "mvhd");
  let movieTimescale = 1000;
  let movieDuration = 0;
  if (mvhd) {
    const v = dv.getUint8(mvhd.start);
    movieTimescale = dv.getUint32(mvhd.start + (v === 1 ? 20 : 12));
    movieDuration = v === 1 ? u64(dv, mvhd.start + 24) : dv.getUint32(mvhd.start + 16);
  }
  if (child(dv, moov, "mvex") || fragmented) {
    throw new MediaError("unsupported_format", "fragmented MP4 files cannot be hashed on the device yet");
  }
  for (const trak of boxes(dv, moov.start, moov.end)) {
    if (trak.type !== "trak") continue;
    const hdlr = path(dv, trak, "mdia", "hdlr");
    if (!hdlr || fourcc(dv, hdlr.start + 8) !== "vide") continue;
    const mdhd = path(dv, trak, "mdia", "mdhd");
    if (!mdhd) throw new MediaError("corrupt", "the video track has no media header (mdhd)");
    const v = dv.getUint8(mdhd.start);
    const timescale = dv.getUint32(mdhd.start + (v === 1 ? 20 : 12));
    const mediaDuration = v === 1 ? u64(dv, mdhd.start + 24) : dv.getUint32(mdhd.start + 16);
    const stbl = path(dv, trak, "mdia", "minf", "stbl");
    if (!stbl) throw new MediaError("corrupt", "the video track has no sample table (stbl)");
    const stsd = child(dv, stbl, "stsd");
    if (!stsd) throw new MediaError("corrupt", "the video track has no sample description (stsd)");
    const entries = [...boxes(dv, stsd.start + 8, stsd.end)];
    if (!entries.length) throw new MediaError("corrupt", "the video track describes no codec");
    if (!timescale) throw new MediaError("corrupt", "the video track has no time scale");
    const config = codecConfig(dv, entries[0]);
    const table = readSampleTable(dv, stbl, timescale);
    const elst = readEditList(dv, trak, movieTimescale);
    return {
      track: { ...config, ...table, mediaDuration, edits: elst ? elst.edits : null, movieTimescale },
      duration: movieTimescale ? movieDuration / movieTimescale : null,
    };
  }
  throw new MediaError("corrupt", "the file has no video stream");
}
