// PDQ, bit for bit as the reference C++ core (facebook/ThreatExchange pdq/cpp:
// hashing/pdqhashing.cpp, downscaling/downscaling.cpp, hashing/torben.cpp) that the
// `pdqhash` Python package compiles and safehold calls.
//
// Every float in the reference is a C `float` (IEEE binary32). Here values live in
// Float32Array buffers (a store rounds to binary32) or pass through Math.fround; an
// addition, subtraction, multiplication or division of two binary32 values done in
// binary64 and then rounded to binary32 gives exactly the binary32 result (binary64
// has more than 2 * 24 + 2 bits), so each step equals the C step as long as the
// operations happen in the reference's order, which they do below.
//
// The luma plane is what safehold feeds the core (src/safehold/signals/_pdqcore.py):
// r * 0.299 + g * 0.587 + b * 0.114 evaluated in binary64 and stored as binary32.

import { DCT_MATRIX } from "./pdq-dct.js";

const fround = Math.fround;
const MIN_HASHABLE_DIM = 5;

/** Float32 luma of interleaved 8-bit pixels (RGBA when `channels` is 4, RGB when 3). */
export function lumaFromPixels(pixels, width, height, channels = 4, out = null) {
  const n = width * height;
  const luma = out && out.length >= n ? out : new Float32Array(n);
  for (let i = 0, p = 0; i < n; i++, p += channels) {
    luma[i] = pixels[p] * 0.299 + pixels[p + 1] * 0.587 + pixels[p + 2] * 0.114;
  }
  return luma;
}

/** computeJaroszFilterWindowSize */
function windowSize(oldDimension, newDimension) {
  return Math.trunc((oldDimension + 2 * newDimension - 1) / (2 * newDimension));
}

/** box1DFloat along every row (boxAlongRowsFloat): src -> dst, both rows x cols. */
function boxRows(src, dst, rows, cols, window) {
  const half = Math.trunc((window + 2) / 2);
  const p1 = half - 1;
  const p2 = window - half + 1;
  const p3 = cols - window;
  const p4 = half - 1;
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let li = base;
    let ri = base;
    let oi = base;
    let sum = 0;
    let count = 0;
    for (let i = 0; i < p1; i++) {
      sum = fround(sum + src[ri++]);
      count++;
    }
    for (let i = 0; i < p2; i++) {
      sum = fround(sum + src[ri++]);
      count++;
      dst[oi++] = sum / count;
    }
    for (let i = 0; i < p3; i++) {
      sum = fround(sum + src[ri++]);
      sum = fround(sum - src[li++]);
      dst[oi++] = sum / count;
    }
    for (let i = 0; i < p4; i++) {
      sum = fround(sum - src[li++]);
      count--;
      dst[oi++] = sum / count;
    }
  }
}

/**
 * box1DFloat down every column (boxAlongColsFloat). Each column sees exactly the
 * reference's additions, subtractions and divisions in the same order; the columns
 * are advanced together, a row at a time, so that memory is read sequentially.
 * `sums` is a Float32Array of at least `cols` running sums (binary32, as in C).
 */
function boxCols(src, dst, rows, cols, window, sums) {
  const s = sums;
  s.fill(0, 0, cols);
  const half = Math.trunc((window + 2) / 2);
  const p1 = half - 1;
  const p2 = window - half + 1;
  const p3 = rows - window;
  const p4 = half - 1;
  let ri = 0;
  let li = 0;
  let oi = 0;
  let count = 0;
  for (let i = 0; i < p1; i++, ri++) {
    const b = ri * cols;
    for (let c = 0; c < cols; c++) s[c] = fround(s[c] + src[b + c]);
    count++;
  }
  for (let i = 0; i < p2; i++, ri++, oi++) {
    const b = ri * cols;
    const o = oi * cols;
    count++;
    for (let c = 0; c < cols; c++) {
      const v = fround(s[c] + src[b + c]);
      s[c] = v;
      dst[o + c] = v / count;
    }
  }
  for (let i = 0; i < p3; i++, ri++, li++, oi++) {
    const b = ri * cols;
    const l = li * cols;
    const o = oi * cols;
    for (let c = 0; c < cols; c++) {
      const v = fround(fround(s[c] + src[b + c]) - src[l + c]);
      s[c] = v;
      dst[o + c] = v / count;
    }
  }
  for (let i = 0; i < p4; i++, li++, oi++) {
    const l = li * cols;
    const o = oi * cols;
    count--;
    for (let c = 0; c < cols; c++) {
      const v = fround(s[c] - src[l + c]);
      s[c] = v;
      dst[o + c] = v / count;
    }
  }
}

/** boxCols for the 64 columns `colIndex` of src only; dst is rows x 64. */
function boxPickedCols(src, dst, rows, cols, window, colIndex, sums) {
  const m = colIndex.length;
  const s = sums;
  s.fill(0, 0, m);
  const half = Math.trunc((window + 2) / 2);
  const p1 = half - 1;
  const p2 = window - half + 1;
  const p3 = rows - window;
  const p4 = half - 1;
  let ri = 0;
  let li = 0;
  let oi = 0;
  let count = 0;
  for (let i = 0; i < p1; i++, ri++) {
    const b = ri * cols;
    for (let c = 0; c < m; c++) s[c] = fround(s[c] + src[b + colIndex[c]]);
    count++;
  }
  for (let i = 0; i < p2; i++, ri++, oi++) {
    const b = ri * cols;
    count++;
    for (let c = 0; c < m; c++) {
      const v = fround(s[c] + src[b + colIndex[c]]);
      s[c] = v;
      dst[oi * m + c] = v / count;
    }
  }
  for (let i = 0; i < p3; i++, ri++, li++, oi++) {
    const b = ri * cols;
    const l = li * cols;
    for (let c = 0; c < m; c++) {
      const k = colIndex[c];
      const v = fround(fround(s[c] + src[b + k]) - src[l + k]);
      s[c] = v;
      dst[oi * m + c] = v / count;
    }
  }
  for (let i = 0; i < p4; i++, li++, oi++) {
    const l = li * cols;
    count--;
    for (let c = 0; c < m; c++) {
      const v = fround(s[c] - src[l + colIndex[c]]);
      s[c] = v;
      dst[oi * m + c] = v / count;
    }
  }
}

/**
 * The reference's 64x64 buffer: two Jarosz passes (rows then columns, twice) and
 * decimateFloat's centre samples. `luma` is overwritten (it is the reference's
 * fullBuffer1). A 64x64 picture is copied unfiltered, as pdqFloat256FromFloatLuma does.
 */
export function downsample64(luma, rows, cols, scratch = null) {
  const out = new Float32Array(64 * 64);
  if (rows === 64 && cols === 64) {
    out.set(luma.subarray(0, 4096));
    return out;
  }
  const n = rows * cols;
  const tmp = scratch && scratch.length >= n ? scratch : new Float32Array(n);
  const wr = windowSize(cols, 64);
  const wc = windowSize(rows, 64);
  const sums = new Float32Array(Math.max(cols, 64));
  // Pass 1 (rows, columns), pass 2 rows: every value as in the reference.
  boxRows(luma, tmp, rows, cols, wr);
  boxCols(tmp, luma, rows, cols, wc, sums);
  boxRows(luma, tmp, rows, cols, wr);
  // Pass 2 columns: only the 64 columns that decimation samples are needed.
  const colIndex = new Int32Array(64);
  for (let j = 0; j < 64; j++) colIndex[j] = Math.trunc(((j + 0.5) * cols) / 64);
  const picked = cols >= 64 ? luma.subarray(0, rows * 64) : new Float32Array(rows * 64);
  boxPickedCols(tmp, picked, rows, cols, wc, colIndex, sums);
  for (let i = 0; i < 64; i++) {
    const ini = Math.trunc(((i + 0.5) * rows) / 64);
    for (let j = 0; j < 64; j++) out[i * 64 + j] = picked[ini * 64 + j];
  }
  return out;
}

/** pdqImageDomainQualityMetric */
export function qualityMetric(a) {
  let gradientSum = 0;
  for (let i = 0; i < 63; i++) {
    for (let j = 0; j < 64; j++) {
      const d = Math.trunc(fround(fround(fround(a[i * 64 + j] - a[(i + 1) * 64 + j]) * 100) / 255));
      gradientSum += Math.abs(d);
    }
  }
  for (let i = 0; i < 64; i++) {
    for (let j = 0; j < 63; j++) {
      const d = Math.trunc(fround(fround(fround(a[i * 64 + j] - a[i * 64 + j + 1]) * 100) / 255));
      gradientSum += Math.abs(d);
    }
  }
  const quality = Math.trunc(gradientSum / 90);
  return quality > 100 ? 100 : quality;
}

/** dct64To16: B = D A D^T, with T = D A, summed in the reference's order. */
export function dct64To16(a) {
  const D = DCT_MATRIX;
  const t = new Float32Array(16 * 64);
  const b = new Float32Array(16 * 16);
  for (let i = 0; i < 16; i++) {
    for (let j = 0; j < 64; j++) {
      let sum = 0;
      for (let k = 0; k < 64; k++) sum = fround(sum + fround(D[i * 64 + k] * a[k * 64 + j]));
      t[i * 64 + j] = sum;
    }
  }
  for (let i = 0; i < 16; i++) {
    for (let j = 0; j < 16; j++) {
      let sum = 0;
      for (let k = 0; k < 64; k++) sum = fround(sum + fround(t[i * 64 + k] * D[j * 64 + k]));
      b[i * 16 + j] = sum;
    }
  }
  return b;
}

/** torben: the median of a Float32Array, as the reference computes it. */
export function torben(m) {
  const n = m.length;
  let min = m[0];
  let max = m[0];
  for (let i = 1; i < n; i++) {
    if (m[i] < min) min = m[i];
    if (m[i] > max) max = m[i];
  }
  let less, greater, equal, guess, maxltguess, mingtguess;
  const half = Math.trunc((n + 1) / 2);
  for (;;) {
    guess = fround(fround(min + max) / 2);
    less = 0;
    greater = 0;
    equal = 0;
    maxltguess = min;
    mingtguess = max;
    for (let i = 0; i < n; i++) {
      const v = m[i];
      if (v < guess) {
        less++;
        if (v > maxltguess) maxltguess = v;
      } else if (v > guess) {
        greater++;
        if (v < mingtguess) mingtguess = v;
      } else {
        equal++;
      }
    }
    if (less <= half && greater <= half) break;
    else if (less > greater) max = maxltguess;
    else min = mingtguess;
  }
  if (less >= half) return maxltguess;
  if (less + equal >= half) return guess;
  return mingtguess;
}

/** pdqBuffer16x16ToBits + Hash256 formatting: 64 hex digits, word 15 first. */
export function bitsToHex(b) {
  const median = torben(b);
  const words = new Uint16Array(16);
  for (let i = 0; i < 16; i++) {
    for (let j = 0; j < 16; j++) {
      if (b[i * 16 + j] > median) words[i] |= 1 << j;
    }
  }
  let hex = "";
  for (let w = 15; w >= 0; w--) hex += words[w].toString(16).padStart(4, "0");
  return hex;
}

const ZERO_HASH = "0".repeat(64);

/**
 * PDQ of a float32 luma plane (rows x cols, row-major). The plane is used as scratch
 * space and overwritten. Returns {pdq, quality}.
 */
export function pdqFromLuma(luma, width, height, scratch = null) {
  if (height < MIN_HASHABLE_DIM || width < MIN_HASHABLE_DIM) return { pdq: ZERO_HASH, quality: 0 };
  const a = downsample64(luma, height, width, scratch);
  const quality = qualityMetric(a);
  return { pdq: bitsToHex(dct64To16(a)), quality };
}

/** PDQ of interleaved 8-bit RGBA (channels = 4) or RGB (channels = 3) pixels. */
export function pdqFromPixels(pixels, width, height, channels = 4) {
  return pdqFromLuma(lumaFromPixels(pixels, width, height, channels), width, height);
}

/** Hamming distance between two hex strings of equal length. */
export function hamming(a, b) {
  let d = 0;
  for (let i = 0; i < a.length; i++) {
    let x = parseInt(a[i], 16) ^ parseInt(b[i], 16);
    while (x) {
      d += x & 1;
      x >>= 1;
    }
  }
  return d;
}
