// Pictures: the same pixels safehold's Python side hashes (src/safehold/media.py:
// Pillow's full decode, EXIF orientation applied, 8-bit RGB, alpha dropped), turned
// into PDQ's float32 luma plane.
//
// The browser decodes (createImageBitmap, no colour management, no premultiplication).
// Chromium's decoders give Pillow's pixels for JPEG (libjpeg-turbo in both, same IDCT
// and upsampling), PNG, GIF, BMP, WebP and AVIF. Three things need care:
//
// * A 2D canvas stores premultiplied colour, so where alpha < 255 its pixels lose
//   precision. Such pictures are read back through WebGL instead (texture upload with
//   premultiplication off, readPixels), which returns the stored colour exactly.
// * Fully transparent pixels come back as 0,0,0 from a canvas. Pillow gives their
//   stored colour: for GIF the palette colour of the transparent index (index 0
//   where none is transparent), for PNG the tRNS colour. Where the file has a single
//   transparent colour it is read from the file and put back, without WebGL.
// * Chromium ignores the EXIF orientation of WebP files; Pillow applies it. It is
//   read here and applied to the luma plane (a feature test first checks that this
//   browser really ignores it).

import { MediaError } from "./errors.js";

const BAND_PIXELS = 4 * 1024 * 1024;

// ------------------------------------------------------------------ header parsing

function u16le(b, i) {
  return b[i] | (b[i + 1] << 8);
}
function u32le(b, i) {
  return (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)) >>> 0;
}
function u32be(b, i) {
  return ((b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]) >>> 0;
}
function ascii(b, i, n) {
  let s = "";
  for (let k = 0; k < n && i + k < b.length; k++) s += String.fromCharCode(b[i + k]);
  return s;
}

/** The declared picture size from the first bytes, or null when not found there. */
export function declaredSize(head, format) {
  try {
    if (format === "png" && head.length >= 24) return { width: u32be(head, 16), height: u32be(head, 20) };
    if (format === "gif" && head.length >= 10) return { width: u16le(head, 6), height: u16le(head, 8) };
    if (format === "bmp" && head.length >= 26) {
      const size = u32le(head, 14);
      if (size === 12) return { width: u16le(head, 18), height: u16le(head, 20) };
      return { width: Math.abs(u32le(head, 18) | 0), height: Math.abs(u32le(head, 22) | 0) };
    }
    if (format === "webp" && head.length >= 30) {
      const kind = ascii(head, 12, 4);
      if (kind === "VP8X") {
        return { width: 1 + (head[24] | (head[25] << 8) | (head[26] << 16)), height: 1 + (head[27] | (head[28] << 8) | (head[29] << 16)) };
      }
      if (kind === "VP8 ") return { width: u16le(head, 26) & 0x3fff, height: u16le(head, 28) & 0x3fff };
      if (kind === "VP8L") {
        const bits = u32le(head, 21);
        return { width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1 };
      }
    }
    if (format === "jpeg") {
      let i = 2;
      while (i + 9 < head.length) {
        if (head[i] !== 0xff) return null;
        const marker = head[i + 1];
        if (marker === 0xff) {
          i++;
          continue;
        }
        if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
          return { width: (head[i + 7] << 8) | head[i + 8], height: (head[i + 5] << 8) | head[i + 6] };
        }
        if (marker === 0xd8 || (marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) {
          i += 2;
          continue;
        }
        i += 2 + ((head[i + 2] << 8) | head[i + 3]);
      }
      return null;
    }
    if (format === "avif") {
      let best = null;
      for (let i = 4; i + 16 <= head.length; i++) {
        if (head[i] === 0x69 && ascii(head, i, 4) === "ispe") {
          const w = u32be(head, i + 8);
          const h = u32be(head, i + 12);
          if (!best || w * h > best.width * best.height) best = { width: w, height: h };
        }
      }
      return best;
    }
  } catch (e) {
    return null;
  }
  return null;
}

/** EXIF orientation (tag 0x0112 of IFD0) from a TIFF/EXIF block, or 1. */
export function exifOrientation(b) {
  let o = 0;
  if (ascii(b, 0, 6) === "Exif\u0000\u0000") o = 6;
  const order = ascii(b, o, 2);
  const le = order === "II";
  if (!le && order !== "MM") return 1;
  const r16 = (i) => (le ? b[i] | (b[i + 1] << 8) : (b[i] << 8) | b[i + 1]);
  const r32 = (i) => (le ? u32le(b, i) : u32be(b, i));
  if (r16(o + 2) !== 42) return 1;
  const ifd = o + r32(o + 4);
  if (ifd + 2 > b.length) return 1;
  const n = r16(ifd);
  for (let k = 0; k < n; k++) {
    const e = ifd + 2 + 12 * k;
    if (e + 12 > b.length) return 1;
    if (r16(e) === 0x0112) {
      const type = r16(e + 2);
      const v = type === 3 ? r16(e + 8) : type === 4 ? r32(e + 8) : 1;
      return v >= 1 && v <= 8 ? v : 1;
    }
  }
  return 1;
}

/** The EXIF orientation of a WebP file (its EXIF chunk may come after the image data). */
async function webpOrientation(blob) {
  let at = 12;
  for (let guard = 0; guard < 1000 && at + 8 <= blob.size; guard++) {
    const h = new Uint8Array(await blob.slice(at, at + 8).arrayBuffer());
    const kind = ascii(h, 0, 4);
    const size = u32le(h, 4);
    if (kind === "EXIF") {
      return exifOrientation(new Uint8Array(await blob.slice(at + 8, at + 8 + Math.min(size, 1 << 20)).arrayBuffer()));
    }
    at += 8 + size + (size & 1);
  }
  return 1;
}

/**
 * The colour Pillow gives transparent GIF pixels (and pixels outside the first
 * frame): the first frame's colour table entry of its transparent index, else of
 * index 0. Returns [r, g, b] or null when the file cannot be parsed.
 */
export function gifTransparentColour(b) {
  if (b.length < 13) return null;
  const packed = b[10];
  let at = 13;
  let global = null;
  if (packed & 0x80) {
    const n = 3 * (2 << (packed & 7));
    global = b.subarray(at, at + n);
    at += n;
  }
  let transparent = null;
  while (at < b.length) {
    const kind = b[at];
    if (kind === 0x21) {
      const label = b[at + 1];
      at += 2;
      if (label === 0xf9 && b[at] >= 4) {
        transparent = b[at + 1] & 1 ? b[at + 4] : null;
      }
      while (at < b.length && b[at] !== 0) at += b[at] + 1;
      at++;
    } else if (kind === 0x2c) {
      const ipacked = b[at + 9];
      let table = global;
      if (ipacked & 0x80) table = b.subarray(at + 10, at + 10 + 3 * (2 << (ipacked & 7)));
      if (!table) return [0, 0, 0];
      const index = transparent === null ? 0 : transparent;
      if (3 * index + 2 >= table.length) return [0, 0, 0];
      return [table[3 * index], table[3 * index + 1], table[3 * index + 2]];
    } else return null;
  }
  return null;
}

/**
 * The colour of fully transparent pixels of a PNG with one transparent colour (a
 * tRNS chunk on grey or RGB, or on a palette where exactly one entry is transparent
 * and the others opaque), as Pillow gives it; null otherwise. Chromium returns such
 * pixels as 0,0,0,0 through a canvas; this restores them without needing WebGL.
 */
export function pngTransparentColour(b) {
  if (b.length < 33) return null;
  const depth = b[24];
  const colour = b[25];
  let at = 8;
  let palette = null;
  while (at + 12 <= b.length) {
    const len = u32be(b, at);
    const kind = ascii(b, at + 4, 4);
    const data = b.subarray(at + 8, at + 8 + len);
    if (kind === "PLTE") palette = data;
    else if (kind === "tRNS") {
      if (colour === 0 && data.length >= 2) {
        const v = (data[0] << 8) | data[1];
        const g = depth === 16 ? Math.floor((v + 128) / 257) : depth === 8 ? v : null;
        return g === null ? null : [g, g, g];
      }
      if (colour === 2 && data.length >= 6) {
        const c = [(data[0] << 8) | data[1], (data[2] << 8) | data[3], (data[4] << 8) | data[5]];
        return depth === 16 ? c.map((v) => v >> 8) : c;
      }
      if (colour === 3 && palette) {
        let index = -1;
        for (let i = 0; i < data.length; i++) {
          if (data[i] === 0 && index === -1) index = i;
          else if (data[i] !== 255) return null;
        }
        if (index < 0 || 3 * index + 2 >= palette.length) return null;
        return [palette[3 * index], palette[3 * index + 1], palette[3 * index + 2]];
      }
      return null;
    } else if (kind === "IDAT" || kind === "IEND") return null;
    at += 12 + len;
  }
  return null;
}

// ------------------------------------------------------------------ feature test

// A 2x1 lossless WebP whose EXIF says "rotate 90 degrees clockwise" (orientation 6).
const WEBP_EXIF6 =
  "UklGRlYAAABXRUJQVlA4WAoAAAAIAAAAAQAAAAAAVlA4TBYAAAAvAQAAAA9wJuQrwN+DZ/4jDRWI6H8ARVhJRhoAAABNTQAqAAAACAABARIAAwAAAAEABgAAAAAAAA==";
let webpHonoured = null;

async function browserOrientsWebp() {
  if (webpHonoured === null) {
    try {
      const bytes = Uint8Array.from(atob(WEBP_EXIF6), (c) => c.charCodeAt(0));
      const bmp = await createImageBitmap(new Blob([bytes], { type: "image/webp" }), { imageOrientation: "from-image" });
      webpHonoured = bmp.width === 1 && bmp.height === 2;
      bmp.close();
    } catch (e) {
      webpHonoured = false;
    }
  }
  return webpHonoured;
}

// ------------------------------------------------------------------ orientation

/** Apply an EXIF orientation (Pillow's exif_transpose) to a float plane. */
export function orientPlane(src, w, h, orientation, dst) {
  if (orientation === 1) return { plane: src, width: w, height: h };
  const swap = orientation >= 5;
  const W = swap ? h : w;
  const H = swap ? w : h;
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      let sx;
      let sy;
      switch (orientation) {
        case 2: sx = w - 1 - x; sy = y; break; // FLIP_LEFT_RIGHT
        case 3: sx = w - 1 - x; sy = h - 1 - y; break; // ROTATE_180
        case 4: sx = x; sy = h - 1 - y; break; // FLIP_TOP_BOTTOM
        case 5: sx = y; sy = x; break; // TRANSPOSE
        case 6: sx = y; sy = h - 1 - x; break; // ROTATE_270 (90 clockwise)
        case 7: sx = w - 1 - y; sy = h - 1 - x; break; // TRANSVERSE
        default: sx = w - 1 - y; sy = x; break; // 8: ROTATE_90 (90 anticlockwise)
      }
      dst[y * W + x] = src[sy * w + sx];
    }
  }
  return { plane: dst, width: W, height: H };
}

// ------------------------------------------------------------------ pixel reading

function lumaBand(px, luma, offset, n, fill = null) {
  let partial = false;
  for (let i = 0, p = 0; i < n; i++, p += 4) {
    const a = px[p + 3];
    if (a !== 255) {
      if (fill !== null && a === 0) {
        luma[offset + i] = fill;
        continue;
      }
      partial = true;
    }
    luma[offset + i] = px[p] * 0.299 + px[p + 1] * 0.587 + px[p + 2] * 0.114;
  }
  return partial;
}

function readCanvas(bitmap, luma, fill) {
  const w = bitmap.width;
  const h = bitmap.height;
  const canvas = new OffscreenCanvas(w, h);
  const ctx = canvas.getContext("2d", { willReadFrequently: true, alpha: true });
  if (!ctx) throw new MediaError("unsupported_browser", "this browser cannot read picture pixels (no 2D canvas)");
  ctx.drawImage(bitmap, 0, 0);
  const band = Math.max(1, Math.floor(BAND_PIXELS / w));
  let partial = false;
  for (let y = 0; y < h; y += band) {
    const rows = Math.min(band, h - y);
    const data = ctx.getImageData(0, y, w, rows).data;
    if (lumaBand(data, luma, y * w, w * rows, fill)) partial = true;
  }
  canvas.width = 1;
  canvas.height = 1;
  return partial;
}

/** Exact (unpremultiplied) pixels through WebGL2; false when WebGL is not available. */
function readWebgl(bitmap, luma) {
  let gl = null;
  try {
    gl = new OffscreenCanvas(1, 1).getContext("webgl2", {
      alpha: true,
      antialias: false,
      depth: false,
      stencil: false,
      premultipliedAlpha: false,
      preserveDrawingBuffer: false,
    });
  } catch (e) {
    gl = null;
  }
  if (!gl) return false;
  const w = bitmap.width;
  const h = bitmap.height;
  const tile = Math.min(4096, gl.getParameter(gl.MAX_TEXTURE_SIZE) || 2048);
  const tex = gl.createTexture();
  const fb = gl.createFramebuffer();
  gl.bindTexture(gl.TEXTURE_2D, tex);
  gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.NEAREST);
  gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.NEAREST);
  gl.pixelStorei(gl.UNPACK_PREMULTIPLY_ALPHA_WEBGL, false);
  gl.pixelStorei(gl.UNPACK_COLORSPACE_CONVERSION_WEBGL, gl.NONE);
  gl.pixelStorei(gl.UNPACK_FLIP_Y_WEBGL, false);
  gl.pixelStorei(gl.PACK_ALIGNMENT, 1);
  gl.bindFramebuffer(gl.FRAMEBUFFER, fb);
  let buf = null;
  try {
    for (let y0 = 0; y0 < h; y0 += tile) {
      for (let x0 = 0; x0 < w; x0 += tile) {
        const tw = Math.min(tile, w - x0);
        const th = Math.min(tile, h - y0);
        gl.pixelStorei(gl.UNPACK_SKIP_PIXELS, x0);
        gl.pixelStorei(gl.UNPACK_SKIP_ROWS, y0);
        gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA8, tw, th, 0, gl.RGBA, gl.UNSIGNED_BYTE, bitmap);
        gl.framebufferTexture2D(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.TEXTURE_2D, tex, 0);
        if (gl.checkFramebufferStatus(gl.FRAMEBUFFER) !== gl.FRAMEBUFFER_COMPLETE) return false;
        if (!buf || buf.length < tw * th * 4) buf = new Uint8Array(tw * th * 4);
        gl.readPixels(0, 0, tw, th, gl.RGBA, gl.UNSIGNED_BYTE, buf);
        if (gl.getError() !== gl.NO_ERROR) return false;
        for (let r = 0; r < th; r++) {
          const o = (y0 + r) * w + x0;
          for (let c = 0, p = r * tw * 4; c < tw; c++, p += 4) {
            luma[o + c] = buf[p] * 0.299 + buf[p + 1] * 0.587 + buf[p + 2] * 0.114;
          }
        }
      }
    }
    return true;
  } finally {
    gl.deleteFramebuffer(fb);
    gl.deleteTexture(tex);
    const lose = gl.getExtension("WEBGL_lose_context");
    if (lose) lose.loseContext();
  }
}

/**
 * Decode a picture and return {luma, scratch, width, height, warnings}: `luma` is the
 * upright picture's float32 luma plane, `scratch` a second plane of the same size
 * for PDQ to work in.
 */
export async function decodeLuma(blob, format, head, { maxPixels = 50_000_000, webgl = true } = {}) {
  if (typeof createImageBitmap === "undefined" || typeof OffscreenCanvas === "undefined") {
    throw new MediaError("unsupported_browser", "this browser cannot decode pictures for hashing (no createImageBitmap/OffscreenCanvas)");
  }
  const declared = declaredSize(head, format);
  const tooMany = (w, h) =>
    new MediaError("too_many_pixels", `the picture is ${w}x${h} = ${w * h} pixels; the limit on this device is ${maxPixels}`);
  if (declared && declared.width * declared.height > maxPixels) throw tooMany(declared.width, declared.height);
  if (declared && (declared.width === 0 || declared.height === 0)) {
    throw new MediaError("corrupt", `the picture declares an empty size (${declared.width}x${declared.height})`);
  }
  let orientation = 1;
  let imageOrientation = "from-image";
  if (format === "webp" && !(await browserOrientsWebp())) {
    orientation = await webpOrientation(blob);
    imageOrientation = "none";
  }
  let bitmap;
  try {
    bitmap = await createImageBitmap(blob, { colorSpaceConversion: "none", premultiplyAlpha: "none", imageOrientation });
  } catch (e) {
    throw new MediaError("corrupt", `the ${format.toUpperCase()} picture is damaged or cannot be decoded by this browser`);
  }
  const w = bitmap.width;
  const h = bitmap.height;
  const warnings = [];
  try {
    if (!w || !h) throw new MediaError("corrupt", "the picture is empty");
    if (w * h > maxPixels) throw tooMany(w, h);
    let luma = new Float32Array(w * h);
    let scratch = new Float32Array(w * h);
    let fill = null;
    const c = format === "gif" ? gifTransparentColour(head) : format === "png" ? pngTransparentColour(head) : null;
    if (c) fill = c[0] * 0.299 + c[1] * 0.587 + c[2] * 0.114;
    const partial = readCanvas(bitmap, luma, fill);
    let exact = !partial;
    if (partial && webgl) {
      try {
        exact = readWebgl(bitmap, luma);
      } catch (e) {
        exact = false;
      }
    }
    if (!exact) {
      warnings.push(
        "the picture is partly transparent and WebGL is not available: its colours are read premultiplied, so the hash may differ by a few bits",
      );
    }
    if (orientation !== 1) {
      const o = orientPlane(luma, w, h, orientation, scratch);
      scratch = luma;
      luma = o.plane;
      return { luma, scratch, width: o.width, height: o.height, warnings };
    }
    return { luma, scratch, width: w, height: h, warnings };
  } finally {
    bitmap.close();
  }
}
