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
    members_[id] = Member{session, group};
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
    wg::encode_envelope(group, send.payload, envelope);
    auto guarantee = send.guarantee ? totem::Guarantee::safe : totem::Guarantee::agreed;
    auto r = submit_(envelope, guarantee);
    if (r.status == totem::SubmitStatus::ok) return;
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

void Groups::retry() {
    // submit() reports progress, which calls retry() again: one pass at a time.
    if (retrying_) return;
    retrying_ = true;
    struct Reset {
        bool& flag;
        ~Reset() { flag = false; }
    } reset{retrying_};
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
    for (auto id : std::vector<std::uint64_t>(it->second)) {
        auto m = members_.find(id);
        if (m == members_.end()) continue;
        if (auto s = m->second.session.lock()) s->push(scratch_);
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
    for (auto& [id, m] : members_)
        if (auto s = m.session.lock()) s->push(scratch_);
}

std::size_t Groups::sessions() const { return members_.size(); }

}  // namespace conclave::daemon
