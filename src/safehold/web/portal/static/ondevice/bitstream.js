// The colour matrix and range FFmpeg's decoders attach to decoded frames, read from
// the bitstream headers as those decoders read them. (A browser's VideoFrame.colorSpace
// is no substitute: Chromium reports BT.709 for streams that declare nothing, where
// FFmpeg reports "unspecified" and libswscale then uses BT.601.)
//
// Returns {matrix, fullRange}: matrix as AVColorSpace (2 = unspecified).

class Bits {
  constructor(bytes) {
    this.b = bytes;
    this.pos = 0;
  }

  u(n) {
    let v = 0;
    for (let i = 0; i < n; i++) {
      const byte = this.b[this.pos >> 3];
      if (byte === undefined) throw new Error("bitstream ended");
      v = v * 2 + ((byte >> (7 - (this.pos & 7))) & 1);
      this.pos++;
    }
    return v;
  }

  ue() {
    let zeros = 0;
    while (this.u(1) === 0) {
      zeros++;
      if (zeros > 31) throw new Error("bad exp-Golomb code");
    }
    return zeros ? 2 ** zeros - 1 + this.u(zeros) : 0;
  }

  se() {
    const k = this.ue();
    return k & 1 ? (k + 1) / 2 : -(k / 2);
  }
}

function unescapeNal(nal) {
  const out = [];
  for (let i = 0; i < nal.length; i++) {
    if (i >= 2 && nal[i] === 3 && nal[i - 1] === 0 && nal[i - 2] === 0 && i + 1 < nal.length && nal[i + 1] <= 3) continue;
    out.push(nal[i]);
  }
  return new Uint8Array(out);
}

/** H.264 sequence parameter set (without the NAL header byte) -> VUI colour. */
export function h264SpsColour(spsPayload) {
  const r = new Bits(unescapeNal(spsPayload));
  const profile = r.u(8);
  r.u(8); // constraint flags
  r.u(8); // level
  r.ue(); // seq_parameter_set_id
  if ([100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135].includes(profile)) {
    const chroma = r.ue();
    if (chroma === 3) r.u(1);
    r.ue();
    r.ue();
    r.u(1);
    if (r.u(1)) {
      for (let i = 0; i < (chroma !== 3 ? 8 : 12); i++) {
        if (r.u(1)) {
          const size = i < 6 ? 16 : 64;
          let last = 8;
          let next = 8;
          for (let j = 0; j < size; j++) {
            if (next !== 0) next = (last + r.se() + 256) % 256;
            last = next === 0 ? last : next;
          }
        }
      }
    }
  }
  r.ue(); // log2_max_frame_num_minus4
  const pocType = r.ue();
  if (pocType === 0) r.ue();
  else if (pocType === 1) {
    r.u(1);
    r.se();
    r.se();
    const n = r.ue();
    for (let i = 0; i < n; i++) r.se();
  }
  r.ue(); // max_num_ref_frames
  r.u(1);
  r.ue();
  r.ue();
  if (!r.u(1)) r.u(1); // frame_mbs_only_flag, mb_adaptive_frame_field_flag
  r.u(1); // direct_8x8_inference_flag
  if (r.u(1)) {
    r.ue();
    r.ue();
    r.ue();
    r.ue();
  }
  const out = { matrix: null, fullRange: null };
  if (!r.u(1)) return out; // no VUI
  if (r.u(1)) {
    if (r.u(8) === 255) {
      r.u(16);
      r.u(16);
    }
  }
  if (r.u(1)) r.u(1); // overscan
  if (r.u(1)) {
    r.u(3); // video_format
    out.fullRange = r.u(1) === 1;
    if (r.u(1)) {
      r.u(8);
      r.u(8);
      out.matrix = r.u(8);
    }
  }
  return out;
}

/** The first SPS of an avcC record. */
export function avccColour(avcc) {
  if (!avcc || avcc.length < 8) return { matrix: null, fullRange: null };
  const count = avcc[5] & 31;
  if (!count) return { matrix: null, fullRange: null };
  const len = (avcc[6] << 8) | avcc[7];
  return h264SpsColour(avcc.subarray(9, 8 + len)); // skip the NAL header byte
}

const VP9_SPACES = [2, 5, 1, 6, 7, 9, 3, 0];

/** The colour config of a VP9 key frame (uncompressed header). */
export function vp9Colour(frame) {
  const r = new Bits(frame);
  if (r.u(2) !== 2) return { matrix: null, fullRange: null };
  const low = r.u(1);
  const high = r.u(1);
  const profile = (high << 1) + low;
  if (profile === 3) r.u(1);
  if (r.u(1)) return { matrix: null, fullRange: null }; // show_existing_frame
  if (r.u(1) !== 0) return { matrix: null, fullRange: null }; // not a key frame
  r.u(1);
  r.u(1);
  if (r.u(24) !== 0x498342) return { matrix: null, fullRange: null };
  if (profile >= 2) r.u(1);
  const space = r.u(3);
  const fullRange = space === 7 ? true : r.u(1) === 1;
  return { matrix: VP9_SPACES[space], fullRange };
}

/** VP8: FFmpeg tags frames BT.470BG; the range is the key frame's clamping bit. */
export function vp8Colour(frame) {
  // 3-byte frame tag, then (key frames) 3-byte start code and 4 bytes of size.
  if (!frame || frame.length < 12 || frame[0] & 1) return { matrix: 5, fullRange: false };
  let value = (frame[10] << 8) | frame[11];
  let range = 255;
  let at = 12;
  let count = 0;
  const bit = () => {
    const split = 1 + (((range - 1) * 128) >> 8);
    const big = split << 8;
    let b;
    if (value >= big) {
      b = 1;
      range -= split;
      value -= big;
    } else {
      b = 0;
      range = split;
    }
    while (range < 128) {
      value = (value << 1) & 0xffff;
      range <<= 1;
      if (++count === 8) {
        count = 0;
        value |= at < frame.length ? frame[at++] : 0;
      }
    }
    return b;
  };
  bit(); // color_space
  return { matrix: 5, fullRange: bit() === 1 };
}

/** AV1: the sequence header OBU's color_config (as libdav1d reports it). */
export function av1Colour(data) {
  let at = 0;
  while (at < data.length) {
    const header = data[at];
    const type = (header >> 3) & 15;
    const ext = (header >> 2) & 1;
    const hasSize = (header >> 1) & 1;
    let p = at + 1 + ext;
    let size = data.length - p;
    if (hasSize) {
      size = 0;
      for (let i = 0; i < 8; i++) {
        const b = data[p++];
        size |= (b & 0x7f) << (7 * i);
        if (!(b & 0x80)) break;
      }
    }
    if (type === 1) return av1SequenceColour(data.subarray(p, p + size));
    at = p + size;
  }
  return { matrix: null, fullRange: null };
}

function av1SequenceColour(b) {
  const r = new Bits(b);
  const profile = r.u(3);
  r.u(1); // still_picture
  const reduced = r.u(1);
  let decoderModelInfo = false;
  let bufferDelayLength = 0;
  if (reduced) r.u(5);
  else {
    if (r.u(1)) {
      r.u(32);
      r.u(32);
      if (r.u(1)) {
        let zeros = 0;
        while (r.u(1) === 0) zeros++;
        if (zeros) r.u(zeros);
      }
      decoderModelInfo = r.u(1) === 1;
      if (decoderModelInfo) {
        bufferDelayLength = r.u(5) + 1;
        r.u(32);
        r.u(5);
        r.u(5);
      }
    }
    const initialDisplayDelay = r.u(1);
    const count = r.u(5) + 1;
    for (let i = 0; i < count; i++) {
      r.u(12);
      const level = r.u(5);
      if (level > 7) r.u(1);
      if (decoderModelInfo) {
        if (r.u(1)) {
          r.u(bufferDelayLength);
          r.u(bufferDelayLength);
          r.u(1);
        }
      }
      if (initialDisplayDelay && r.u(1)) r.u(4);
    }
  }
  const wBits = r.u(4) + 1;
  const hBits = r.u(4) + 1;
  r.u(wBits);
  r.u(hBits);
  if (!reduced && r.u(1)) {
    r.u(4);
    r.u(3);
  }
  r.u(1); // use_128x128_superblock
  r.u(1); // enable_filter_intra
  r.u(1); // enable_intra_edge_filter
  if (!reduced) {
    r.u(4); // interintra, masked compound, warped motion, dual filter
    const orderHint = r.u(1);
    if (orderHint) {
      r.u(1);
      r.u(1);
    }
    const chooseScreen = r.u(1);
    let forceScreen = 2;
    if (!chooseScreen) forceScreen = r.u(1);
    if (forceScreen > 0 && !r.u(1)) r.u(1); // seq_choose_integer_mv / seq_force_integer_mv
    if (orderHint) r.u(3);
  }
  r.u(1); // enable_superres
  r.u(1); // enable_cdef
  r.u(1); // enable_restoration
  // color_config
  const high = r.u(1);
  if (profile === 2 && high) r.u(1);
  const mono = profile === 1 ? 0 : r.u(1);
  let matrix = 2;
  let primaries = 2;
  let transfer = 2;
  if (r.u(1)) {
    primaries = r.u(8);
    transfer = r.u(8);
    matrix = r.u(8);
  }
  let fullRange;
  if (mono) fullRange = r.u(1) === 1;
  else if (primaries === 1 && transfer === 13 && matrix === 0) fullRange = true;
  else fullRange = r.u(1) === 1;
  return { matrix, fullRange };
}
