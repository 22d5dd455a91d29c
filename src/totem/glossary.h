// Glossary of the ring protocol's vocabulary, used with these meanings everywhere in
// src/totem, src/sim and the tests. Sources: Amir et al., "The Totem single-ring ordering
// and membership protocol", ACM TOCS 13(4) 1995 (cited as "Totem §n"); DESIGN.md §5.
//
//   ring            the fixed, ordered set of member node ids; the token visits them in
//                   ascending node-id order and wraps from the highest to the lowest.
//   rep             representative: the lowest node id of the ring. Originates the first
//                   token, closes each watermark rotation and may hold an idle token.
//   ring id         {rep, seq64}: names one ring instance. Carried in every packet so the
//                   membership protocol (next issue) can tell foreign rings apart.
//   token           the unicast packet that grants the right to multicast. Its fields are
//                   listed in wire/totem.h (Token).
//   token_seq       copy counter of the token, +1 per forward. A receiver drops a token
//                   whose token_seq is not newer than the last one it accepted, so a
//                   retransmitted token is harmless (Totem §3.1).
//   frame           one sequenced multicast packet (McastFrame). Carries chunks of
//                   application messages: many small ones packed, or one fragment of a
//                   large one. "seq" always means a frame's position in the total order.
//   seq             the frame sequence number, 32 bits, compared with serial-number
//                   arithmetic (seq.h) so the ring survives the wrap past 2^32.
//   aru             all-received-up-to: for a node, the highest seq s such that it holds
//                   every frame <= s (my_aru); on the token, a low-water mark over the ring
//                   maintained by the rule of Totem §3.2 (lower it if yours is lower; only
//                   the node named by aru_id may raise it).
//   aru_id          the node that last set token.aru; 0 when aru == seq.
//   safe point      min(token.aru on my previous visit, token.aru on this visit). Every
//                   member holds every frame <= the safe point (Totem §3.3 "aru on two
//                   successive rotations"). Used for safe delivery and to free frames.
//   agreed          delivery guarantee: delivered once every lower seq was delivered.
//   safe            delivery guarantee: agreed, and every member holds the frame.
//   rtr             retransmit request: a seq put on the token by a node missing it; any
//                   holder of that frame re-multicasts it (Totem §3.2).
//   retransmit store the frames a node keeps so it can answer rtr requests; a frame is
//                   dropped only once the safe point passed it (and it was delivered).
//   fcc, backlog    flow-control fields of the token (Totem §8): frames sent in the last
//                   rotation, and the sum of every member's queued frames.
//   window_size     max frames multicast by the whole ring in one rotation.
//   max_messages    max frames one node multicasts per token visit.
//   token hold      an idle ring's rep keeps the token instead of forwarding it, until the
//                   hold timer fires or a hold-cancel arrives (Corosync deviation, kept).
//   watermark       a per-node application value (e.g. durable version, DESIGN.md §6.3);
//                   the token carries its minimum over one full rotation.
#pragma once
