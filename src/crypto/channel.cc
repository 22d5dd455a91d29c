#include "crypto/channel.h"

#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include <cstdlib>
#include <utility>

namespace conclave::crypto {

std::string_view reject_name(Reject r) {
    switch (r) {
        case Reject::bad_tag: return "bad_tag";
        case Reject::replay: return "replay";
        case Reject::too_old: return "too_old";
        case Reject::other_cluster: return "other_cluster";
        case Reject::malformed: return "malformed";
        case Reject::unknown_version: return "unknown_version";
        case Reject::unknown_key: return "unknown_key";
        case Reject::misdirected: return "misdirected";
    }
    return "?";
}

std::uint64_t RejectCounts::total() const {
    std::uint64_t t = 0;
    for (auto n : by_reason) t += n;
    return t;
}

SessionKey derive_session_key(const AuthKey& key, const wire::BootId& boot, std::uint64_t cluster_id) {
    std::uint8_t salt[16];
    wire::store_u64(salt, boot.epoch);
    wire::store_u64(salt + 8, boot.nonce);
    std::uint8_t info[8];
    wire::store_u64(info, cluster_id);

    SessionKey out{};
    EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
    EVP_KDF_CTX* ctx = kdf ? EVP_KDF_CTX_new(kdf) : nullptr;
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<std::uint8_t*>(key.bytes.data()),
                                          key.bytes.size()),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, salt, sizeof salt),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, sizeof info),
        OSSL_PARAM_construct_end(),
    };
    bool ok = ctx && EVP_KDF_derive(ctx, out.data(), out.size(), params) == 1;
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);
    // HKDF-SHA256 is in OpenSSL 3's default provider; without it nothing can be sealed.
    if (!ok) std::abort();
    return out;
}

Channel::Channel(ChannelConfig config)
    : config_(std::move(config)),
      seal_key_(config_.cipher, derive_session_key(config_.current, config_.boot, config_.cluster_id),
                Direction::seal) {}

bool Channel::seal(wire::ByteView body, wire::Bytes& out, std::uint32_t receiver) {
    if (counter_ == UINT64_MAX) return false;
    wire::DatagramHeader h;
    h.cipher = static_cast<std::uint8_t>(config_.cipher);
    h.cluster_id = config_.cluster_id;
    h.sender = config_.node_id;
    h.key_id = config_.current.id;
    h.boot = config_.boot;
    h.counter = counter_ + 1;
    h.receiver = receiver;
    out.resize(wire::kHeaderSize + body.size() + wire::kTagSize);
    encode_header(h, out.data());
    std::uint8_t* ct = out.data() + wire::kHeaderSize;
    if (!seal_key_.seal(h.counter, wire::ByteView(out.data(), wire::kHeaderSize), body, ct, ct + body.size()))
        return false;
    counter_ = h.counter;
    return true;
}

const AuthKey* Channel::key_by_id(std::uint32_t id) const {
    if (config_.current.id == id) return &config_.current;
    if (config_.next && config_.next->id == id) return &*config_.next;
    return nullptr;
}

void Channel::make_room() {
    if (peers_.size() < kMaxPeers) return;
    auto oldest = peers_.begin();
    for (auto it = peers_.begin(); it != peers_.end(); ++it)
        if (it->second.last_heard < oldest->second.last_heard) oldest = it;
    peers_.erase(oldest);
}

std::variant<Channel::Opened, Reject> Channel::open(wire::ByteView datagram, wire::Bytes& scratch) {
    wire::DatagramHeader h;
    switch (wire::decode_header(datagram, h)) {
        case wire::HeaderError::malformed: return reject(Reject::malformed);
        case wire::HeaderError::unknown_version: return reject(Reject::unknown_version);
        case wire::HeaderError::none: break;
    }
    if (h.cluster_id != config_.cluster_id) return reject(Reject::other_cluster);
    if (h.sender == config_.node_id || (h.receiver != 0 && h.receiver != config_.node_id))
        return reject(Reject::misdirected);
    auto cipher = cipher_from_wire(h.cipher);
    if (!cipher || h.counter == 0) return reject(Reject::malformed);
    const AuthKey* key = key_by_id(h.key_id);
    if (!key) return reject(Reject::unknown_key);

    auto it = peers_.find(h.sender);
    Peer* peer = it == peers_.end() ? nullptr : &it->second;
    bool same_boot = peer && peer->boot == h.boot;
    if (peer && !same_boot && h.boot.epoch <= peer->boot.epoch) return reject(Reject::too_old);
    if (same_boot) {
        switch (peer->window.check(h.counter)) {
            case ReplayWindow::Verdict::replay: return reject(Reject::replay);
            case ReplayWindow::Verdict::too_old: return reject(Reject::too_old);
            case ReplayWindow::Verdict::fresh: break;
        }
    }

    // Find the cached key of this (sender, boot, key, cipher), or derive a candidate
    // that is cached only if the tag verifies.
    AeadKey* aead = nullptr;
    if (same_boot) {
        for (auto& slot : peer->keys)
            if (slot.key_id == h.key_id && slot.cipher == *cipher) aead = &slot.aead;
    }
    std::optional<AeadKey> candidate;
    if (!aead) {
        candidate.emplace(*cipher, derive_session_key(*key, h.boot, config_.cluster_id), Direction::open);
        aead = &*candidate;
    }

    std::size_t body_size = datagram.size() - wire::kHeaderSize - wire::kTagSize;
    scratch.resize(body_size);
    const std::uint8_t* ct = datagram.data() + wire::kHeaderSize;
    if (!aead->open(h.counter, datagram.first(wire::kHeaderSize), wire::ByteView(ct, body_size), ct + body_size,
                    scratch.data()))
        return reject(Reject::bad_tag);

    // Verified: now, and only now, the sender's state may change.
    if (!same_boot) {
        if (!peer) {
            make_room();
            peer = &peers_[h.sender];
        }
        *peer = Peer{};
        peer->boot = h.boot;
    }
    if (candidate) peer->keys.push_back(SlotKey{h.key_id, *cipher, std::move(*candidate)});
    const bool newest = h.counter > peer->window.top();
    peer->window.accept(h.counter);
    peer->last_heard = ++tick_;
    ++opened_;
    return Opened{h.sender, h.boot, h.counter, newest, wire::ByteView(scratch.data(), body_size)};
}

void Channel::set_keys(AuthKey current, std::optional<AuthKey> next) {
    config_.current = std::move(current);
    config_.next = std::move(next);
    seal_key_ = AeadKey(config_.cipher, derive_session_key(config_.current, config_.boot, config_.cluster_id),
                        Direction::seal);
    for (auto& [id, peer] : peers_) {
        std::erase_if(peer.keys, [&](const SlotKey& s) { return key_by_id(s.key_id) == nullptr; });
    }
}

}  // namespace conclave::crypto
