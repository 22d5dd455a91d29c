#include "daemon/groups.h"

#include <algorithm>

namespace conclave::daemon {

using nlohmann::json;
namespace wg = wire::group;

nlohmann::json Groups::join(const std::string& group, const std::shared_ptr<runtime::ControlSession>& session) {
    if (!wg::valid_group_name(group))
        return json{{"ok", false}, {"error", "invalid group name (letters, digits, - _ . :, at most 64)"}};
    std::uint64_t id = session->id();
    if (members_.count(id)) return json{{"ok", false}, {"error", "this connection already joined a group"}};
    members_[id] = Member{session, group, {}};
    by_group_[group].push_back(id);
    session->upgrade([this, id, group](const wg::Send& s) { on_send(id, group, s); }, [this, id] { drop(id); });
    if (have_config_) {
        // The newcomer learns the current configuration first (queued behind the reply).
        wire::Bytes frame;
        wg::encode_config({2, last_rep_, last_ring_seq_, last_members_}, frame);
        session->push(frame);
    }
    return json{{"ok", true}, {"group", group}};
}

void Groups::on_send(std::uint64_t session_id, const std::string& group, const wg::Send& send) {
    wire::Bytes envelope;
    envelope.reserve(2 + group.size() + send.payload.size());
    wg::encode_envelope(group, send.payload, envelope);
    auto guarantee = send.guarantee ? totem::Guarantee::safe : totem::Guarantee::agreed;
    auto r = submit_(std::move(envelope), guarantee);
    if (r.status == totem::SubmitStatus::ok) return;
    // Refused: the ring did not take the bytes; encode them again to hold them.
    envelope.clear();
    wg::encode_envelope(group, send.payload, envelope);
    auto it = members_.find(session_id);
    if (it == members_.end()) return;
    auto session = it->second.session.lock();
    if (!session) return;
    if (r.status == totem::SubmitStatus::too_large) {
        wire::Bytes err;
        wg::encode_error("message too large for the ring (1 MiB with the group envelope)", err);
        session->push(err);
        return;
    }
    // The ring's queue is full: hold this one message and stop reading the client.
    blocked_.push_back(Held{session_id, std::move(envelope), guarantee});
    session->pause_reading();
}

void Groups::queue(std::uint64_t session_id, Member& m, wire::ByteView frame) {
    if (m.out.empty()) dirty_.push_back(session_id);
    m.out.insert(m.out.end(), frame.begin(), frame.end());
}

void Groups::flush() {
    // push() may close a session (a client too far behind), which drop()s it: look each
    // one up again rather than holding iterators.
    auto dirty = std::move(dirty_);
    dirty_.clear();
    for (auto id : dirty) {
        auto it = members_.find(id);
        if (it == members_.end() || it->second.out.empty()) continue;
        wire::Bytes out;
        out.swap(it->second.out);
        if (auto s = it->second.session.lock()) s->push(out);
        // Keep the buffer's capacity for the next batch (the member may be gone now).
        out.clear();
        if (auto again = members_.find(id); again != members_.end() && again->second.out.empty())
            again->second.out.swap(out);
    }
}

void Groups::retry() {
    flush();
    // submit() reports progress, which calls retry() again: one pass at a time.
    if (retrying_) return;
    retrying_ = true;
    struct Reset {
        Groups& g;
        ~Reset() {
            g.retrying_ = false;
            g.flush();  // deliveries made by the submits below
        }
    } reset{*this};
    while (!blocked_.empty()) {
        Held& h = blocked_.front();
        auto it = members_.find(h.session_id);
        if (it == members_.end()) {
            blocked_.pop_front();
            continue;
        }
        auto r = submit_(h.message, h.guarantee);
        if (r.status == totem::SubmitStatus::try_again) return;
        auto session = it->second.session.lock();
        blocked_.pop_front();
        if (session) session->resume_reading();
    }
}

void Groups::drop(std::uint64_t session_id) {
    auto it = members_.find(session_id);
    if (it == members_.end()) return;
    auto& ids = by_group_[it->second.group];
    std::erase(ids, session_id);
    if (ids.empty()) by_group_.erase(it->second.group);
    members_.erase(it);
}

void Groups::deliver(const totem::Delivery& d) {
    std::string_view group;
    wire::ByteView payload;
    if (!wg::decode_envelope(d.payload, group, payload)) return;
    ++number_;
    auto it = by_group_.find(std::string(group));
    if (it == by_group_.end()) return;
    scratch_.clear();
    wg::encode_deliver({d.sender, static_cast<std::uint8_t>(d.guarantee == totem::Guarantee::safe ? 1 : 0), number_, payload},
                       scratch_);
    for (auto id : it->second) {
        auto m = members_.find(id);
        if (m != members_.end()) queue(id, m->second, scratch_);
    }
}

void Groups::configuration(std::uint8_t kind, std::uint32_t rep, std::uint64_t ring_seq,
                           const std::vector<std::uint32_t>& members) {
    if (kind == 2) {
        have_config_ = true;
        last_rep_ = rep;
        last_ring_seq_ = ring_seq;
        last_members_ = members;
    }
    scratch_.clear();
    wg::encode_config({kind, rep, ring_seq, members}, scratch_);
    for (auto& [id, m] : members_) queue(id, m, scratch_);
}

std::size_t Groups::sessions() const { return members_.size(); }

}  // namespace conclave::daemon
