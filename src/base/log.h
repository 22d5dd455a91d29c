// Logging: one line per event, to stderr, with the node id and the current ring id on
// every line (DESIGN brief: "Logs: one line per event, with node id and ring id").
//
// Under systemd (JOURNAL_STREAM set, stderr connected to the journal) each line starts
// with the syslog priority "<N>" so journald files it at the right level and adds its
// own timestamp; elsewhere lines carry an ISO-8601 UTC timestamp and the level name.
// Thread-safe: each line is one write(2).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace conclave::log {

enum class Level { error = 3, warning = 4, notice = 5, info = 6, debug = 7 };

void set_level(Level level);
Level level();
// Who is speaking: node id (0 = not known yet) and the ring id as shown by status ("1.1a8").
void set_node(std::uint32_t node_id);
void set_ring(std::string ring_id);

bool enabled(Level l);
void write(Level l, std::string_view message);

// The line exactly as write() would print it (tests; no I/O).
std::string format_line(Level l, std::string_view message, bool journal);

inline void error(std::string_view m) { write(Level::error, m); }
inline void warning(std::string_view m) { write(Level::warning, m); }
inline void notice(std::string_view m) { write(Level::notice, m); }
inline void info(std::string_view m) { write(Level::info, m); }
inline void debug(std::string_view m) {
    if (enabled(Level::debug)) write(Level::debug, m);
}

}  // namespace conclave::log
