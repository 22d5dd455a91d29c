// Fuzz target: open (authenticate + decrypt + header decode) arbitrary datagrams.
// Besides crashes it checks the layer's promise: nothing opens unless it was sealed by
// a holder of the key, and every rejection is counted.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "crypto/channel.h"

using namespace conclave;

namespace {

crypto::ChannelConfig cfg(std::uint32_t node) {
    crypto::ChannelConfig c;
    c.cluster_id = wire::cluster_id_of("fuzz");
    c.node_id = node;
    c.boot = {1, node};
    for (std::size_t i = 0; i < c.current.bytes.size(); ++i) c.current.bytes[i] = static_cast<std::uint8_t>(i);
    crypto::compute_key_id(c.current);
    return c;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static crypto::Channel receiver(cfg(2));
    static crypto::Channel sender(cfg(1));
    static wire::Bytes scratch, sealed;

    auto before = receiver.rejects().total() + receiver.opened();
    auto r = receiver.open(wire::ByteView(data, size), scratch);
    if (receiver.rejects().total() + receiver.opened() != before + 1) std::abort();
    (void)r;

    // A valid datagram carrying the input, for every member or for the receiver alone,
    // must open to exactly the input.
    if (size <= 65000) {
        if (!sender.seal(wire::ByteView(data, size), sealed, size % 2 ? 2 : 0)) std::abort();
        auto ok = receiver.open(sealed, scratch);
        auto* opened = std::get_if<crypto::Channel::Opened>(&ok);
        if (!opened || opened->body.size() != size ||
            (size && std::memcmp(opened->body.data(), data, size) != 0))
            std::abort();
    }
    return 0;
}
