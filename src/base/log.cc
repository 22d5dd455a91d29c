#include "base/log.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <mutex>

namespace conclave::log {
namespace {

std::atomic<Level> g_level{Level::info};
std::atomic<std::uint32_t> g_node{0};
std::mutex g_mutex;  // guards g_ring and serialises lines
std::string g_ring;
const bool g_journal = std::getenv("JOURNAL_STREAM") != nullptr;

const char* level_name(Level l) {
    switch (l) {
        case Level::error: return "error";
        case Level::warning: return "warning";
        case Level::notice: return "notice";
        case Level::info: return "info";
        case Level::debug: return "debug";
    }
    return "?";
}

}  // namespace

void set_level(Level l) { g_level = l; }
Level level() { return g_level; }
void set_node(std::uint32_t node_id) { g_node = node_id; }
void set_ring(std::string ring_id) {
    std::lock_guard<std::mutex> lock(g_mutex);
    g_ring = std::move(ring_id);
}
bool enabled(Level l) { return static_cast<int>(l) <= static_cast<int>(g_level.load()); }

std::string format_line(Level l, std::string_view message, bool journal) {
    std::string line;
    line.reserve(message.size() + 64);
    if (journal) {
        line += '<';
        line += static_cast<char>('0' + static_cast<int>(l));
        line += '>';
    } else {
        auto now = std::chrono::system_clock::now();
        auto secs = std::chrono::system_clock::to_time_t(now);
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
        std::tm tm{};
        gmtime_r(&secs, &tm);
        char stamp[64];
        std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ ", tm.tm_year + 1900, tm.tm_mon + 1,
                      tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
        line += stamp;
        line += level_name(l);
        line += ' ';
    }
    line += "node ";
    line += std::to_string(g_node.load());
    if (!g_ring.empty()) {
        line += " ring ";
        line += g_ring;
    }
    line += ": ";
    // One event, one line: a newline inside a message would forge a second entry.
    for (char ch : message) line += (ch == '\n' || ch == '\r') ? ' ' : ch;
    line += '\n';
    return line;
}

void write(Level l, std::string_view message) {
    if (!enabled(l)) return;
    std::lock_guard<std::mutex> lock(g_mutex);
    std::string line = format_line(l, message, g_journal);
    const char* p = line.data();
    std::size_t n = line.size();
    while (n > 0) {
        ssize_t w = ::write(STDERR_FILENO, p, n);
        if (w <= 0) return;  // nowhere to report a failing stderr
        p += w;
        n -= static_cast<std::size_t>(w);
    }
}

}  // namespace conclave::log
