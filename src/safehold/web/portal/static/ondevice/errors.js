// Errors of on-device hashing. `code` is stable and matches safehold's MediaError
// codes where there is one (src/safehold/errors.py): "empty", "unsupported_format",
// "too_large", "too_many_pixels", "too_many_frames", "too_long", "corrupt"; and
// "unsupported_codec" / "unsupported_browser" for what this browser cannot decode.

export class MediaError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "MediaError";
    this.code = code;
  }
}
