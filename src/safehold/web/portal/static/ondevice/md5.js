// MD5 (RFC 1321), incremental: a file is read in slices, so a 500 MB video never
// sits in memory at once. Written for this project (no third-party code).

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** One 64-byte block (16 little-endian words at x[o..o+15]) into the state (RFC 1321
 * section 3.4, the 64 steps written out; the constants are floor(abs(sin(i)) * 2^32)). */
function block(st, x, o) {
  let a = st[0];
  let b = st[1];
  let c = st[2];
  let d = st[3];
  let t;
  t = (a + ((b & c) | (~b & d)) + x[o + 0] + -680876936) | 0;
  a = (b + ((t << 7) | (t >>> 25))) | 0;
  t = (d + ((a & b) | (~a & c)) + x[o + 1] + -389564586) | 0;
  d = (a + ((t << 12) | (t >>> 20))) | 0;
  t = (c + ((d & a) | (~d & b)) + x[o + 2] + 606105819) | 0;
  c = (d + ((t << 17) | (t >>> 15))) | 0;
  t = (b + ((c & d) | (~c & a)) + x[o + 3] + -1044525330) | 0;
  b = (c + ((t << 22) | (t >>> 10))) | 0;
  t = (a + ((b & c) | (~b & d)) + x[o + 4] + -176418897) | 0;
  a = (b + ((t << 7) | (t >>> 25))) | 0;
  t = (d + ((a & b) | (~a & c)) + x[o + 5] + 1200080426) | 0;
  d = (a + ((t << 12) | (t >>> 20))) | 0;
  t = (c + ((d & a) | (~d & b)) + x[o + 6] + -1473231341) | 0;
  c = (d + ((t << 17) | (t >>> 15))) | 0;
  t = (b + ((c & d) | (~c & a)) + x[o + 7] + -45705983) | 0;
  b = (c + ((t << 22) | (t >>> 10))) | 0;
  t = (a + ((b & c) | (~b & d)) + x[o + 8] + 1770035416) | 0;
  a = (b + ((t << 7) | (t >>> 25))) | 0;
  t = (d + ((a & b) | (~a & c)) + x[o + 9] + -1958414417) | 0;
  d = (a + ((t << 12) | (t >>> 20))) | 0;
  t = (c + ((d & a) | (~d & b)) + x[o + 10] + -42063) | 0;
  c = (d + ((t << 17) | (t >>> 15))) | 0;
  t = (b + ((c & d) | (~c & a)) + x[o + 11] + -1990404162) | 0;
  b = (c + ((t << 22) | (t >>> 10))) | 0;
  t = (a + ((b & c) | (~b & d)) + x[o + 12] + 1804603682) | 0;
  a = (b + ((t << 7) | (t >>> 25))) | 0;
  t = (d + ((a & b) | (~a & c)) + x[o + 13] + -40341101) | 0;
  d = (a + ((t << 12) | (t >>> 20))) | 0;
  t = (c + ((d & a) | (~d & b)) + x[o + 14] + -1502002290) | 0;
  c = (d + ((t << 17) | (t >>> 15))) | 0;
  t = (b + ((c & d) | (~c & a)) + x[o + 15] + 1236535329) | 0;
  b = (c + ((t << 22) | (t >>> 10))) | 0;
  t = (a + ((d & b) | (~d & c)) + x[o + 1] + -165796510) | 0;
  a = (b + ((t << 5) | (t >>> 27))) | 0;
  t = (d + ((c & a) | (~c & b)) + x[o + 6] + -1069501632) | 0;
  d = (a + ((t << 9) | (t >>> 23))) | 0;
  t = (c + ((b & d) | (~b & a)) + x[o + 11] + 643717713) | 0;
  c = (d + ((t << 14) | (t >>> 18))) | 0;
  t = (b + ((a & c) | (~a & d)) + x[o + 0] + -373897302) | 0;
  b = (c + ((t << 20) | (t >>> 12))) | 0;
  t = (a + ((d & b) | (~d & c)) + x[o + 5] + -701558691) | 0;
  a = (b + ((t << 5) | (t >>> 27))) | 0;
  t = (d + ((c & a) | (~c & b)) + x[o + 10] + 38016083) | 0;
  d = (a + ((t << 9) | (t >>> 23))) | 0;
  t = (c + ((b & d) | (~b & a)) + x[o + 15] + -660478335) | 0;
  c = (d + ((t << 14) | (t >>> 18))) | 0;
  t = (b + ((a & c) | (~a & d)) + x[o + 4] + -405537848) | 0;
  b = (c + ((t << 20) | (t >>> 12))) | 0;
  t = (a + ((d & b) | (~d & c)) + x[o + 9] + 568446438) | 0;
  a = (b + ((t << 5) | (t >>> 27))) | 0;
  t = (d + ((c & a) | (~c & b)) + x[o + 14] + -1019803690) | 0;
  d = (a + ((t << 9) | (t >>> 23))) | 0;
  t = (c + ((b & d) | (~b & a)) + x[o + 3] + -187363961) | 0;
  c = (d + ((t << 14) | (t >>> 18))) | 0;
  t = (b + ((a & c) | (~a & d)) + x[o + 8] + 1163531501) | 0;
  b = (c + ((t << 20) | (t >>> 12))) | 0;
  t = (a + ((d & b) | (~d & c)) + x[o + 13] + -1444681467) | 0;
  a = (b + ((t << 5) | (t >>> 27))) | 0;
  t = (d + ((c & a) | (~c & b)) + x[o + 2] + -51403784) | 0;
  d = (a + ((t << 9) | (t >>> 23))) | 0;
  t = (c + ((b & d) | (~b & a)) + x[o + 7] + 1735328473) | 0;
  c = (d + ((t << 14) | (t >>> 18))) | 0;
  t = (b + ((a & c) | (~a & d)) + x[o + 12] + -1926607734) | 0;
  b = (c + ((t << 20) | (t >>> 12))) | 0;
  t = (a + (b ^ c ^ d) + x[o + 5] + -378558) | 0;
  a = (b + ((t << 4) | (t >>> 28))) | 0;
  t = (d + (a ^ b ^ c) + x[o + 8] + -2022574463) | 0;
  d = (a + ((t << 11) | (t >>> 21))) | 0;
  t = (c + (d ^ a ^ b) + x[o + 11] + 1839030562) | 0;
  c = (d + ((t << 16) | (t >>> 16))) | 0;
  t = (b + (c ^ d ^ a) + x[o + 14] + -35309556) | 0;
  b = (c + ((t << 23) | (t >>> 9))) | 0;
  t = (a + (b ^ c ^ d) + x[o + 1] + -1530992060) | 0;
  a = (b + ((t << 4) | (t >>> 28))) | 0;
  t = (d + (a ^ b ^ c) + x[o + 4] + 1272893353) | 0;
  d = (a + ((t << 11) | (t >>> 21))) | 0;
  t = (c + (d ^ a ^ b) + x[o + 7] + -155497632) | 0;
  c = (d + ((t << 16) | (t >>> 16))) | 0;
  t = (b + (c ^ d ^ a) + x[o + 10] + -1094730640) | 0;
  b = (c + ((t << 23) | (t >>> 9))) | 0;
  t = (a + (b ^ c ^ d) + x[o + 13] + 681279174) | 0;
  a = (b + ((t << 4) | (t >>> 28))) | 0;
  t = (d + (a ^ b ^ c) + x[o + 0] + -358537222) | 0;
  d = (a + ((t << 11) | (t >>> 21))) | 0;
  t = (c + (d ^ a ^ b) + x[o + 3] + -722521979) | 0;
  c = (d + ((t << 16) | (t >>> 16))) | 0;
  t = (b + (c ^ d ^ a) + x[o + 6] + 76029189) | 0;
  b = (c + ((t << 23) | (t >>> 9))) | 0;
  t = (a + (b ^ c ^ d) + x[o + 9] + -640364487) | 0;
  a = (b + ((t << 4) | (t >>> 28))) | 0;
  t = (d + (a ^ b ^ c) + x[o + 12] + -421815835) | 0;
  d = (a + ((t << 11) | (t >>> 21))) | 0;
  t = (c + (d ^ a ^ b) + x[o + 15] + 530742520) | 0;
  c = (d + ((t << 16) | (t >>> 16))) | 0;
  t = (b + (c ^ d ^ a) + x[o + 2] + -995338651) | 0;
  b = (c + ((t << 23) | (t >>> 9))) | 0;
  t = (a + (c ^ (b | ~d)) + x[o + 0] + -198630844) | 0;
  a = (b + ((t << 6) | (t >>> 26))) | 0;
  t = (d + (b ^ (a | ~c)) + x[o + 7] + 1126891415) | 0;
  d = (a + ((t << 10) | (t >>> 22))) | 0;
  t = (c + (a ^ (d | ~b)) + x[o + 14] + -1416354905) | 0;
  c = (d + ((t << 15) | (t >>> 17))) | 0;
  t = (b + (d ^ (c | ~a)) + x[o + 5] + -57434055) | 0;
  b = (c + ((t << 21) | (t >>> 11))) | 0;
  t = (a + (c ^ (b | ~d)) + x[o + 12] + 1700485571) | 0;
  a = (b + ((t << 6) | (t >>> 26))) | 0;
  t = (d + (b ^ (a | ~c)) + x[o + 3] + -1894986606) | 0;
  d = (a + ((t << 10) | (t >>> 22))) | 0;
  t = (c + (a ^ (d | ~b)) + x[o + 10] + -1051523) | 0;
  c = (d + ((t << 15) | (t >>> 17))) | 0;
  t = (b + (d ^ (c | ~a)) + x[o + 1] + -2054922799) | 0;
  b = (c + ((t << 21) | (t >>> 11))) | 0;
  t = (a + (c ^ (b | ~d)) + x[o + 8] + 1873313359) | 0;
  a = (b + ((t << 6) | (t >>> 26))) | 0;
  t = (d + (b ^ (a | ~c)) + x[o + 15] + -30611744) | 0;
  d = (a + ((t << 10) | (t >>> 22))) | 0;
  t = (c + (a ^ (d | ~b)) + x[o + 6] + -1560198380) | 0;
  c = (d + ((t << 15) | (t >>> 17))) | 0;
  t = (b + (d ^ (c | ~a)) + x[o + 13] + 1309151649) | 0;
  b = (c + ((t << 21) | (t >>> 11))) | 0;
  t = (a + (c ^ (b | ~d)) + x[o + 4] + -145523070) | 0;
  a = (b + ((t << 6) | (t >>> 26))) | 0;
  t = (d + (b ^ (a | ~c)) + x[o + 11] + -1120210379) | 0;
  d = (a + ((t << 10) | (t >>> 22))) | 0;
  t = (c + (a ^ (d | ~b)) + x[o + 2] + 718787259) | 0;
  c = (d + ((t << 15) | (t >>> 17))) | 0;
  t = (b + (d ^ (c | ~a)) + x[o + 9] + -343485551) | 0;
  b = (c + ((t << 21) | (t >>> 11))) | 0;
  st[0] = (st[0] + a) | 0;
  st[1] = (st[1] + b) | 0;
  st[2] = (st[2] + c) | 0;
  st[3] = (st[3] + d) | 0;
}

export const READ_CHUNK = 4 * 1024 * 1024;

export class Md5 {
  constructor() {
    this.state = new Int32Array([0x67452301, 0xefcdab89 | 0, 0x98badcfe | 0, 0x10325476]);
    this.buffer = new Uint8Array(64);
    this.buffered = 0;
    this.length = 0; // bytes, < 2^53
    this.words = new Int32Array(16);
  }

  /** Add bytes (a Uint8Array, an ArrayBuffer or a view). */
  update(data) {
    const bytes =
      data instanceof Uint8Array
        ? data
        : ArrayBuffer.isView(data)
          ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
          : new Uint8Array(data);
    let offset = 0;
    const n = bytes.length;
    this.length += n;
    if (this.buffered) {
      const take = Math.min(64 - this.buffered, n);
      this.buffer.set(bytes.subarray(0, take), this.buffered);
      this.buffered += take;
      offset = take;
      if (this.buffered < 64) return this;
      this._block(this.buffer, 0);
      this.buffered = 0;
    }
    const blocks = (n - offset) >> 6;
    if (blocks && LITTLE_ENDIAN && ((bytes.byteOffset + offset) & 3) === 0) {
      const words = new Int32Array(bytes.buffer, bytes.byteOffset + offset, blocks * 16);
      for (let k = 0; k < blocks; k++) block(this.state, words, 16 * k);
      offset += 64 * blocks;
    } else {
      for (; offset + 64 <= n; offset += 64) this._block(bytes, offset);
    }
    if (offset < n) {
      this.buffer.set(bytes.subarray(offset), 0);
      this.buffered = n - offset;
    }
    return this;
  }

  /** The digest as 32 lowercase hex digits (the object cannot be updated after). */
  hex() {
    const bits = this.length * 8;
    const pad = new Uint8Array(this.buffered < 56 ? 64 - this.buffered : 128 - this.buffered);
    pad[0] = 0x80;
    const lo = bits % 4294967296;
    const hi = Math.floor(bits / 4294967296);
    const end = pad.length - 8;
    for (let i = 0; i < 4; i++) {
      pad[end + i] = (lo >>> (8 * i)) & 0xff;
      pad[end + 4 + i] = (hi >>> (8 * i)) & 0xff;
    }
    const length = this.length;
    this.update(pad);
    this.length = length;
    let out = "";
    for (let i = 0; i < 4; i++) {
      const v = this.state[i];
      for (let b = 0; b < 4; b++) out += ((v >>> (8 * b)) & 0xff).toString(16).padStart(2, "0");
    }
    return out;
  }

  _block(bytes, o) {
    const x = this.words;
    for (let i = 0; i < 16; i++) {
      const p = o + 4 * i;
      x[i] = bytes[p] | (bytes[p + 1] << 8) | (bytes[p + 2] << 16) | (bytes[p + 3] << 24);
    }
    block(this.state, x, 0);
  }
}

/** MD5 of bytes in memory. */
export function md5Bytes(data) {
  return new Md5().update(data).hex();
}

/**
 * MD5 of a Blob/File, read READ_CHUNK bytes at a time. `onChunk(done, total)` is
 * called after each slice.
 */
export async function md5Blob(blob, onChunk = null) {
  const h = new Md5();
  const total = blob.size;
  for (let start = 0; start < total; start += READ_CHUNK) {
    const end = Math.min(total, start + READ_CHUNK);
    h.update(new Uint8Array(await blob.slice(start, end).arrayBuffer()));
    if (onChunk) onChunk(end, total);
  }
  return h.hex();
}
