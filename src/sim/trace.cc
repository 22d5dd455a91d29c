#include "sim/trace.h"

#include <cinttypes>
#include <cstdio>

namespace conclave::sim {

std::string Trace::line(std::size_t i) const {
    const TraceEvent& e = events[i];
    char buf[384];
    const char* mode = e.mode ? "safe" : "agreed";
    int n = std::snprintf(buf, sizeof buf, "#%zu t=%" PRIu64 " n%" PRIu32 " ", i, e.time, e.node);
    const std::size_t rest = sizeof buf - static_cast<std::size_t>(n);
    char* p = buf + n;
    switch (e.kind) {
        case Ev::submit:
            std::snprintf(p, rest, "submit m%" PRIu32 ".%" PRIu64 " size=%" PRIu32 " %s", e.a, e.b, e.size, mode);
            break;
        case Ev::try_again:
            std::snprintf(p, rest, "try-again m%" PRIu32 ".%" PRIu64 " size=%" PRIu32, e.a, e.b, e.size);
            break;
        case Ev::mcast:
            std::snprintf(p, rest, "mcast seq=%" PRIu64 " chunks=%" PRIu32 " first=m%" PRIu32 ".%" PRIu64,
                          e.b, e.size, e.node, e.c);
            break;
        case Ev::rexmit:
            std::snprintf(p, rest, "rexmit seq=%" PRIu64, e.b);
            break;
        case Ev::token:
            std::snprintf(p, rest,
                          "token -> n%" PRIu32 " token_seq=%" PRIu32 " seq=%" PRIu64 " aru=%" PRIu64
                          " rtr=%" PRIu64,
                          e.a, e.size, e.b, e.c, e.hash);
            break;
        case Ev::token_rexmit:
            std::snprintf(p, rest, "token-rexmit -> n%" PRIu32, e.a);
            break;
        case Ev::recv:
            std::snprintf(p, rest, "recv seq=%" PRIu64 " from n%" PRIu32, e.b, e.a);
            break;
        case Ev::drop:
            if (e.b)
                std::snprintf(p, rest, "net-drop frame seq=%" PRIu64 " from n%" PRIu32, e.b, e.a);
            else
                std::snprintf(p, rest, "net-drop %s from n%" PRIu32, e.c ? "hold-cancel" : "token", e.a);
            break;
        case Ev::deliver:
            std::snprintf(p, rest,
                          "deliver m%" PRIu32 ".%" PRIu64 " seq=%" PRIu64 " size=%" PRIu32 " %s hash=%016" PRIx64,
                          e.a, e.b, e.c, e.size, mode, e.hash);
            break;
        case Ev::watermark:
            std::snprintf(p, rest, "watermark %" PRIu64, e.b);
            break;
        case Ev::heal:
            std::snprintf(p, rest, "heal: faults stop");
            break;
        case Ev::config: {
            std::string m;
            for (std::uint32_t y = 1; y <= 64; ++y)
                if (e.hash & (1ull << (y - 1))) m += (m.empty() ? "" : " ") + std::to_string(y);
            std::snprintf(p, rest, "config %s ring %" PRIx32 ".%" PRIx64 " members [%s]",
                          e.mode ? "regular" : "transitional", e.a, e.b, m.c_str());
            break;
        }
        case Ev::start:
            std::snprintf(p, rest, "start (durable ring seq %" PRIu64 ")", e.b);
            break;
        case Ev::crash:
            std::snprintf(p, rest, "crash");
            break;
        case Ev::pause:
            std::snprintf(p, rest, "pause until t=%" PRIu64, e.b);
            break;
        case Ev::resume:
            std::snprintf(p, rest, "resume");
            break;
        case Ev::cut:
            std::snprintf(p, rest, "link n%" PRIu32 " -> here cut", e.a);
            break;
        case Ev::uncut:
            std::snprintf(p, rest, "link n%" PRIu32 " -> here restored", e.a);
            break;
        case Ev::leave:
            std::snprintf(p, rest, "leave");
            break;
        case Ev::log:
            std::snprintf(p, rest, "log: %s", e.b < notes.size() ? notes[e.b].c_str() : "?");
            break;
    }
    return buf;
}

std::string Trace::render() const {
    std::string out = header;
    out += '\n';
    for (std::size_t i = 0; i < events.size(); ++i) {
        out += line(i);
        out += '\n';
    }
    return out;
}

}  // namespace conclave::sim
