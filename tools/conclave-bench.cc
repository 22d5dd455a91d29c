// conclave-bench: prints figures; never passes or fails on time.
//
//   conclave-bench crypto [--seconds S]
//     seal+open throughput of the datagram layer (Channel: header, session key lookup,
//     replay window, AEAD) for 64 B / 1 KiB / 8 KiB bodies, beside raw OpenSSL EVP
//     seal+open of the same sizes with the same cipher measured in the same run.
#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/channel.h"
#include "wire/datagram.h"

using namespace conclave;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Runs op in batches until `budget` seconds have passed; returns ops per second.
template <typename Op>
double rate(double budget, Op op) {
    for (int i = 0; i < 1000; ++i) op();  // warm up
    std::uint64_t n = 0;
    auto t0 = Clock::now();
    double elapsed = 0;
    do {
        for (int i = 0; i < 256; ++i) op();
        n += 256;
        elapsed = seconds_since(t0);
    } while (elapsed < budget);
    return static_cast<double>(n) / elapsed;
}

volatile std::uint8_t g_sink;

// Raw EVP: one encrypt and one decrypt context with the key set once; per operation
// only a nonce, 48 bytes of AAD, the body and the tag, as the datagram layer does.
double raw_evp(crypto::Cipher cipher, std::size_t size, double budget) {
    const EVP_CIPHER* evp = cipher == crypto::Cipher::aes_256_gcm ? EVP_aes_256_gcm() : EVP_chacha20_poly1305();
    unsigned char key[32] = {1, 2, 3};
    unsigned char iv[12] = {};
    EVP_CIPHER_CTX* enc = EVP_CIPHER_CTX_new();
    EVP_CIPHER_CTX* dec = EVP_CIPHER_CTX_new();
    EVP_EncryptInit_ex(enc, evp, nullptr, key, iv);
    EVP_DecryptInit_ex(dec, evp, nullptr, key, iv);
    std::vector<unsigned char> plain(size, 0x5a), ct(size + 16), back(size + 16);
    unsigned char aad[48] = {};
    unsigned char tag[16];
    std::uint64_t counter = 0;
    double r = rate(budget, [&] {
        ++counter;
        std::memcpy(iv + 4, &counter, 8);
        int n = 0;
        EVP_EncryptInit_ex(enc, nullptr, nullptr, nullptr, iv);
        EVP_EncryptUpdate(enc, nullptr, &n, aad, sizeof aad);
        EVP_EncryptUpdate(enc, ct.data(), &n, plain.data(), static_cast<int>(size));
        EVP_EncryptFinal_ex(enc, ct.data() + size, &n);
        EVP_CIPHER_CTX_ctrl(enc, EVP_CTRL_AEAD_GET_TAG, 16, tag);
        EVP_DecryptInit_ex(dec, nullptr, nullptr, nullptr, iv);
        EVP_CIPHER_CTX_ctrl(dec, EVP_CTRL_AEAD_SET_TAG, 16, tag);
        EVP_DecryptUpdate(dec, nullptr, &n, aad, sizeof aad);
        EVP_DecryptUpdate(dec, back.data(), &n, ct.data(), static_cast<int>(size));
        if (EVP_DecryptFinal_ex(dec, back.data() + size, &n) != 1) std::abort();
        g_sink = back[0];
    });
    EVP_CIPHER_CTX_free(enc);
    EVP_CIPHER_CTX_free(dec);
    return r;
}

double channel(crypto::Cipher cipher, std::size_t size, double budget) {
    crypto::AuthKey key;
    for (std::size_t i = 0; i < key.bytes.size(); ++i) key.bytes[i] = static_cast<std::uint8_t>(i * 7);
    crypto::compute_key_id(key);
    auto cfg = [&](std::uint32_t node) {
        crypto::ChannelConfig c;
        c.cluster_id = wire::cluster_id_of("bench");
        c.node_id = node;
        c.boot = {1, 0x1234 + node};
        c.cipher = cipher;
        c.current = key;
        return c;
    };
    crypto::Channel sender(cfg(1)), receiver(cfg(2));
    std::vector<std::uint8_t> body(size, 0x5a);
    wire::Bytes datagram, scratch;
    return rate(budget, [&] {
        if (!sender.seal(body, datagram)) std::abort();
        auto r = receiver.open(datagram, scratch);
        if (!std::holds_alternative<crypto::Channel::Opened>(r)) std::abort();
        g_sink = scratch[0];
    });
}

int bench_crypto(double budget) {
    std::printf("seal+open of one datagram body, %.1f s per figure (median of 3)\n", budget);
    std::printf("%-18s %6s %12s %10s %12s %10s %7s\n", "cipher", "size", "raw ops/s", "raw MB/s", "chan ops/s",
                "chan MB/s", "ratio");
    for (auto cipher : {crypto::Cipher::aes_256_gcm, crypto::Cipher::chacha20_poly1305}) {
        for (std::size_t size : {std::size_t{64}, std::size_t{1024}, std::size_t{8192}}) {
            // Interleave raw and channel runs and take medians so machine noise hits both alike.
            double raw[3], chan[3];
            for (int rep = 0; rep < 3; ++rep) {
                raw[rep] = raw_evp(cipher, size, budget / 3);
                chan[rep] = channel(cipher, size, budget / 3);
            }
            auto median = [](double* v) {
                std::sort(v, v + 3);
                return v[1];
            };
            double r = median(raw), c = median(chan);
            std::printf("%-18s %6zu %12.0f %10.1f %12.0f %10.1f %6.1f%%\n",
                        std::string(crypto::cipher_name(cipher)).c_str(), size, r, r * size / 1e6, c,
                        c * size / 1e6, 100.0 * c / r);
        }
    }
    return 0;
}

constexpr const char* kUsage =
    "usage: conclave-bench crypto [--seconds S]\n"
    "       conclave-bench ring-node --socket PATH --nodes N --index I [--size B] [--secs T]\n"
    "                                [--warmup W] [--senders all|one] [--window K] [--pid P] [--lat FILE]\n"
    "  crypto     seal+open throughput of the datagram layer beside raw OpenSSL EVP,\n"
    "             64 B / 1 KiB / 8 KiB, both ciphers (S seconds per figure, default 1.5)\n"
    "       conclave-bench store-put --socket PATH (--count N | --secs S) [--clients C] [--size B]\n"
    "                                [--keys K] [--prefix P] [--seed X]\n"
    "  ring-node  one node's client of `tools/bench ring` (ordered group messages through\n"
    "             the local conclaved); prints one JSON object\n"
    "  store-put  the client of `tools/bench store`: C connections, one put each outstanding,\n"
    "             B-byte values at P + a random key below K; prints one JSON object\n";

}  // namespace

int ring_node_main(const std::vector<std::string_view>& args);
int store_put_main(const std::vector<std::string_view>& args);

int main(int argc, char** argv) {
    std::vector<std::string_view> args(argv + 1, argv + argc);
    if (args.empty() || args[0] == "-h" || args[0] == "--help") {
        std::fputs(kUsage, args.empty() ? stderr : stdout);
        return args.empty() ? 2 : 0;
    }
    if (args[0] == "ring-node") return ring_node_main(std::vector<std::string_view>(args.begin() + 1, args.end()));
    if (args[0] == "store-put") return store_put_main(std::vector<std::string_view>(args.begin() + 1, args.end()));
    if (args[0] != "crypto") {
        std::fprintf(stderr, "conclave-bench: unknown benchmark '%s'\n%s", std::string(args[0]).c_str(), kUsage);
        return 2;
    }
    double budget = 1.5;
    for (std::size_t i = 1; i < args.size(); ++i) {
        if (args[i] == "--seconds" && i + 1 < args.size()) {
            char* end = nullptr;
            std::string v(args[++i]);
            budget = std::strtod(v.c_str(), &end);
            if (end == v.c_str() || *end != '\0' || !(budget > 0 && budget <= 600)) {
                std::fprintf(stderr, "conclave-bench: --seconds wants a number in (0, 600]\n");
                return 2;
            }
        } else {
            std::fprintf(stderr, "conclave-bench: unknown argument '%s'\n%s", std::string(args[i]).c_str(), kUsage);
            return 2;
        }
    }
    return bench_crypto(budget);
}
