// The public client API of conclave starts here; it grows with the daemon's control socket.
#pragma once

namespace conclave {
inline constexpr int kVersionMajor = 0;
inline constexpr int kVersionMinor = 1;
}  // namespace conclave
