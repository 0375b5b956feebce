#pragma once

// Test-only: compresses bytes the way producers of our inputs do (gzip files and bodies, zstd
// files), and decompresses what we write. Header-only so that only test targets, which link
// zlib/zstd themselves, include it.

#include <zlib.h>
#include <zstd.h>

#include <stdexcept>
#include <string>
#include <string_view>

namespace tessera::test_util {

// One gzip member of `data` at `level` (zlib's 1..9, or Z_DEFAULT_COMPRESSION).
inline std::string Gzip(std::string_view data, int level = Z_DEFAULT_COMPRESSION) {
  z_stream zs{};
  if (deflateInit2(&zs, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    throw std::runtime_error("deflateInit2 failed");
  }
  std::string out(deflateBound(&zs, data.size()) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) throw std::runtime_error("deflate did not finish");
  return out;
}

// One zstd frame of `data`.
inline std::string Zstd(std::string_view data, int level = 3) {
  std::string out(ZSTD_compressBound(data.size()), '\0');
  const size_t n = ZSTD_compress(out.data(), out.size(), data.data(), data.size(), level);
  if (ZSTD_isError(n)) throw std::runtime_error(ZSTD_getErrorName(n));
  out.resize(n);
  return out;
}

// The concatenated contents of the gzip members in `data`; throws on corrupt or truncated data.
inline std::string Gunzip(std::string_view data) {
  z_stream zs{};
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) throw std::runtime_error("inflateInit2 failed");
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  std::string out;
  char buf[64 * 1024];
  int rc = Z_OK;
  while (zs.avail_in > 0 || rc != Z_STREAM_END) {
    if (rc == Z_STREAM_END) inflateReset(&zs);
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof(buf);
    rc = inflate(&zs, Z_NO_FLUSH);
    out.append(buf, sizeof(buf) - zs.avail_out);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      inflateEnd(&zs);
      throw std::runtime_error("corrupt or truncated gzip data");
    }
  }
  inflateEnd(&zs);
  return out;
}

// The concatenated contents of the zstd frames in `data`; throws on corrupt or truncated data.
inline std::string Unzstd(std::string_view data) {
  ZSTD_DCtx* dctx = ZSTD_createDCtx();
  ZSTD_inBuffer in{data.data(), data.size(), 0};
  std::string out;
  char buf[64 * 1024];
  size_t rc = 1;
  while (true) {
    ZSTD_outBuffer o{buf, sizeof(buf), 0};
    rc = ZSTD_decompressStream(dctx, &o, &in);
    if (ZSTD_isError(rc)) break;
    out.append(buf, o.pos);
    // Output room left over: everything decodable so far has been flushed.
    if (in.pos == in.size && o.pos < o.size) break;
  }
  ZSTD_freeDCtx(dctx);
  if (rc != 0) throw std::runtime_error("corrupt or truncated zstd data");
  return out;
}

}  // namespace tessera::test_util
