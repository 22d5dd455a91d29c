#include "wire/datagram.h"

#include <openssl/sha.h>

namespace conclave::wire {

void encode_header(const DatagramHeader& h, std::uint8_t* out) {
    store_u32(out + 0, kMagic);
    out[4] = h.version;
    out[5] = h.cipher;
    out[6] = 0;
    out[7] = 0;
    store_u64(out + 8, h.cluster_id);
    store_u32(out + 16, h.sender);
    store_u32(out + 20, h.key_id);
    store_u64(out + 24, h.boot.epoch);
    store_u64(out + 32, h.boot.nonce);
    store_u64(out + 40, h.counter);
    store_u32(out + 48, h.receiver);
}

HeaderError decode_header(ByteView datagram, DatagramHeader& out) {
    // Magic and version first, so that another version's datagram is named as such
    // whatever its length (version 1's header was shorter).
    if (datagram.size() < 8 || load_u32(datagram.data()) != kMagic) return HeaderError::malformed;
    if (datagram[4] != kWireVersion) return HeaderError::unknown_version;
    if (datagram.size() < kHeaderSize + kTagSize) return HeaderError::malformed;
    Reader r(datagram);
    std::uint32_t magic = 0;
    std::uint16_t reserved = 0;
    r.u32(magic);
    r.u8(out.version);
    r.u8(out.cipher);
    r.u16(reserved);
    r.u64(out.cluster_id);
    r.u32(out.sender);
    r.u32(out.key_id);
    r.u64(out.boot.epoch);
    r.u64(out.boot.nonce);
    r.u64(out.counter);
    r.u32(out.receiver);
    if (!r.ok() || reserved != 0 || out.sender == 0) return HeaderError::malformed;
    return HeaderError::none;
}

std::uint64_t cluster_id_of(std::string_view cluster_name) {
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(cluster_name.data()), cluster_name.size(), digest);
    return load_u64(digest);
}

}  // namespace conclave::wire
