// Decoded video pixels (YUV) to PDQ's float32 luma plane, through the same RGB
// values that safehold's Python side gets from PyAV: `frame.to_ndarray(format="rgb24")`
// runs FFmpeg's libswscale, which for 8-bit 4:2:0 and 4:2:2 uses its "unscaled"
// yuv2rgb converter (libswscale/yuv2rgb.c tables, x86 SSSE3 code in
// libswscale/x86/yuv_2_rgb.asm): chroma repeated over each 2x2 (2x1) block, 16-bit
// fixed point, pmulhw (>> 16), saturation to 0..255. This module is that arithmetic.
//
// The coefficients are FFmpeg's ff_yuv2rgb_coeffs for the frame's matrix
// (unspecified -> BT.601), limited ("MPEG") range unless the stream says full range.

// ff_yuv2rgb_coeffs[colorspace] = {crv, cbu, cgu, cgv}, indexed by AVColorSpace.
const COEFFS = {
  1: [117489, 138438, 13975, 34925], // BT.709
  2: [104597, 132201, 25675, 53279], // unspecified
  4: [104448, 132798, 24759, 53109], // FCC
  5: [104597, 132201, 25675, 53279], // BT.470BG
  6: [104597, 132201, 25675, 53279], // SMPTE 170M
  7: [117579, 136230, 16907, 35559], // SMPTE 240M
  9: [110013, 140363, 12277, 42626], // BT.2020 NCL
};

/** Matrices swscale converts (others make PyAV fail, so they are refused too). */
export function supportedMatrix(matrix) {
  return Object.prototype.hasOwnProperty.call(COEFFS, matrix);
}

function roundToInt16(x) {
  // libswscale roundToInt16: (x + (1 << 15)) >> 16, on int64 values.
  return Math.floor((x + 32768) / 65536);
}

function truncDiv(a, b) {
  return Math.trunc(a / b);
}

/** The SSSE3 converter's coefficients (ff_yuv2rgb_c_init_tables). */
export function swscaleCoefficients(matrix, fullRange) {
  const t = COEFFS[matrix] || COEFFS[2];
  let crv = t[0];
  let cbu = t[1];
  let cgu = -t[2];
  let cgv = -t[3];
  let cy = 65536;
  let oy = 0;
  if (!fullRange) {
    cy = truncDiv(cy * 255, 219);
    oy = 16 * 65536;
  } else {
    crv = truncDiv(crv * 224, 255);
    cbu = truncDiv(cbu * 224, 255);
    cgu = truncDiv(cgu * 224, 255);
    cgv = truncDiv(cgv * 224, 255);
  }
  // contrast = saturation = 1 << 16 and brightness = 0: the scaling steps are identities.
  return {
    y: roundToInt16(cy * 8192),
    vr: roundToInt16(crv * 8192),
    ub: roundToInt16(cbu * 8192),
    vg: roundToInt16(cgv * 8192),
    ug: roundToInt16(cgu * 8192),
    yOffset: roundToInt16(oy * 8),
  };
}

function tables(k) {
  const ys = new Int32Array(256);
  const vr = new Int32Array(256);
  const ub = new Int32Array(256);
  const g = new Int32Array(256 * 256);
  const ug = new Int32Array(256);
  const vg = new Int32Array(256);
  for (let v = 0; v < 256; v++) {
    ys[v] = ((8 * v - k.yOffset) * k.y) >> 16;
    const c = 8 * v - 1024;
    vr[v] = (c * k.vr) >> 16;
    ub[v] = (c * k.ub) >> 16;
    ug[v] = (c * k.ug) >> 16;
    vg[v] = (c * k.vg) >> 16;
  }
  for (let u = 0; u < 256; u++) for (let v = 0; v < 256; v++) g[(u << 8) | v] = ug[u] + vg[v];
  return { ys, vr, ub, g };
}

const tableCache = new Map();

function cachedTables(matrix, fullRange) {
  const key = `${matrix}/${fullRange ? 1 : 0}`;
  let t = tableCache.get(key);
  if (!t) {
    t = tables(swscaleCoefficients(matrix, fullRange));
    tableCache.set(key, t);
  }
  return t;
}

/**
 * Float32 luma of an 8-bit YUV frame. `planes`: {y, u, v} Uint8Array views with
 * {yStride, uStride, vStride}; `chroma`: "420" | "422" | "nv12" (u holds the
 * interleaved UV plane for nv12). Each pixel's RGB is swscale's, then
 * luma = r * 0.299 + g * 0.587 + b * 0.114 as for pictures.
 */
export function yuvToLuma(p, width, height, chroma, matrix, fullRange, out = null) {
  const n = width * height;
  const luma = out && out.length >= n ? out : new Float32Array(n);
  const { ys, vr, ub, g } = cachedTables(matrix, fullRange);
  const vshift = chroma === "422" ? 0 : 1;
  const step = chroma === "nv12" ? 2 : 1; // NV12: U and V interleaved in one plane
  const Y = p.y;
  const U = p.u;
  const V = step === 2 ? p.u : p.v;
  const vOffset = step === 2 ? 1 : 0;
  const vStride = step === 2 ? p.uStride : p.vStride;
  for (let row = 0; row < height; row++) {
    const yRow = row * p.yStride;
    const uRow = (row >> vshift) * p.uStride;
    const vRow = (row >> vshift) * vStride + vOffset;
    let o = row * width;
    for (let x = 0; x < width; x++, o++) {
      const c = (x >> 1) * step;
      const u = U[uRow + c];
      const v = V[vRow + c];
      const yv = ys[Y[yRow + x]];
      // packuswb: clamp to 0..255
      let r = yv + vr[v];
      let gg = yv + g[(u << 8) | v];
      let b = yv + ub[u];
      r = r < 0 ? 0 : r > 255 ? 255 : r;
      gg = gg < 0 ? 0 : gg > 255 ? 255 : gg;
      b = b < 0 ? 0 : b > 255 ? 255 : b;
      luma[o] = r * 0.299 + gg * 0.587 + b * 0.114;
    }
  }
  return luma;
}

/**
 * Approximate luma for layouts swscale converts with its general scaler (4:4:4,
 * more than 8 bits): BT.601/709 in floating point. `depth` is the sample bit depth;
 * planes are Uint8Array (8 bits) or Uint16Array.
 */
export function yuvToLumaApprox(p, width, height, chromaShiftX, chromaShiftY, depth, matrix, fullRange, out = null) {
  const n = width * height;
  const luma = out && out.length >= n ? out : new Float32Array(n);
  const kr = matrix === 1 ? 0.2126 : matrix === 9 ? 0.2627 : 0.299;
  const kb = matrix === 1 ? 0.0722 : matrix === 9 ? 0.0593 : 0.114;
  const max = (1 << depth) - 1;
  const scale = 255 / max;
  for (let row = 0; row < height; row++) {
    for (let x = 0; x < width; x++) {
      let yv = p.y[row * p.yStride + x] * scale;
      let u = p.u[(row >> chromaShiftY) * p.uStride + (x >> chromaShiftX)] * scale - 128;
      let v = p.v[(row >> chromaShiftY) * p.vStride + (x >> chromaShiftX)] * scale - 128;
      if (!fullRange) {
        yv = ((yv - 16) * 255) / 219;
        u = (u * 255) / 224;
        v = (v * 255) / 224;
      }
      const r = Math.min(255, Math.max(0, Math.round(yv + 2 * (1 - kr) * v)));
      const b = Math.min(255, Math.max(0, Math.round(yv + 2 * (1 - kb) * u)));
      const gg = Math.min(255, Math.max(0, Math.round((yv - kr * (yv + 2 * (1 - kr) * v) - kb * (yv + 2 * (1 - kb) * u)) / (1 - kr - kb))));
      luma[row * width + x] = r * 0.299 + gg * 0.587 + b * 0.114;
    }
  }
  return luma;
}
