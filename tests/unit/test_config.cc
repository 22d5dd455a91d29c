#include <doctest/doctest.h>
#include <sys/stat.h>

#include <fstream>
#include <string>

#include "config/config.h"
#include "temp_dir.h"
#include "why.h"

using namespace conclave;
using config::parse;

namespace {

const char* kGood = R"(# a three-node cluster
cluster {
    name: pve-lab
}
node {
    id: 2
    name: pve2   # trailing comment
}
network {
    transport: multicast
    bind_address: 10.10.0.2
    interface: eth0
    mcast_group: 239.192.10.1
    port: 5405
    mtu: 9000
}
crypto {
    key_file: /etc/conclave/authkey
    next_key_file: /etc/conclave/authkey.next
    cipher: chacha20-poly1305
}
paths {
    state_dir: /var/lib/conclave
    mount_point: /etc/pve
}
tree {
    mount: no
    group: www-data
    lock_timeout: 60
}
system {
    sched_rr: no
    token_linger: 0
}
logging {
    level: debug
}
)";

const char* kMinimal = "cluster {\n  name: c\n}\nnode {\n  id: 1\n  name: n1\n}\n";

// Parses and returns the error text ("" when it parsed).
std::string error_of(const std::string& text) {
    auto r = parse(text, "t.conf");
    return r.ok() ? "" : r.error();
}

bool has(const std::string& haystack, const std::string& needle) {
    bool found = haystack.find(needle) != std::string::npos;
    if (!found) MESSAGE("'" << haystack << "' lacks '" << needle << "'");
    return found;
}

}  // namespace

TEST_CASE("a full config parses into every field") {
    auto r = parse(kGood, "good.conf");
    REQUIRE_MESSAGE(r.ok(), test::why(r));
    auto& c = r.value();
    CHECK(c.cluster_name == "pve-lab");
    CHECK(c.node_id == 2);
    CHECK(c.node_name == "pve2");
    CHECK(c.transport == config::Transport::multicast);
    CHECK(c.bind_address == "10.10.0.2");
    CHECK(c.interface == "eth0");
    CHECK(c.mcast_group == "239.192.10.1");
    CHECK(c.port == 5405);
    CHECK(c.mtu == 9000);
    CHECK_FALSE(c.sched_rr);
    CHECK(c.token_linger == 0);
    CHECK(c.next_key_file == "/etc/conclave/authkey.next");
    CHECK(c.cipher == crypto::Cipher::chacha20_poly1305);
    CHECK(c.log_level == config::LogLevel::debug);
    CHECK(!c.mount);
    CHECK(c.group == "www-data");
    CHECK(c.lock_timeout == 60);
    // format() writes a file that parses back to the same thing.
    auto again = parse(config::format(c), "formatted");
    REQUIRE_MESSAGE(again.ok(), test::why(again));
    CHECK(config::format(again.value()) == config::format(c));
}

TEST_CASE("defaults fill what a minimal file leaves out") {
    auto r = parse(kMinimal, "m");
    REQUIRE_MESSAGE(r.ok(), test::why(r));
    CHECK(r->transport == config::Transport::multicast);
    CHECK(r->port == 5405);
    CHECK(r->mtu == 1500);
    CHECK(r->key_file == "/etc/conclave/authkey");
    CHECK(r->cipher == crypto::Cipher::aes_256_gcm);
    CHECK(r->log_level == config::LogLevel::info);
    CHECK(r->mount);
    CHECK(r->mount_point == "/etc/pve");
    CHECK(r->group.empty());  // www-data if it exists, else root
    CHECK(r->lock_timeout == 120);
    CHECK(r->token_linger == 500);
}

TEST_CASE("unicast with peers, IPv4 and IPv6, with and without ports") {
    std::string t = std::string(kMinimal) +
                    "network {\n transport: unicast\n peers: 10.0.0.2, 10.0.0.3:5999 [fd00::4]:5405 fd00::5\n}\n";
    auto r = parse(t, "u");
    REQUIRE_MESSAGE(r.ok(), test::why(r));
    REQUIRE(r->peers.size() == 4);
    CHECK(r->peers[0].address == "10.0.0.2");
    CHECK(r->peers[0].port == 0);
    CHECK(r->peers[1].port == 5999);
    CHECK(r->peers[2].address == "fd00::4");
    CHECK(r->peers[2].port == 5405);
    CHECK(r->peers[3].address == "fd00::5");
    auto again = parse(config::format(r.value()), "f");
    REQUIRE_MESSAGE(again.ok(), test::why(again));
    CHECK(again->peers.size() == 4);
}

TEST_CASE("syntax errors name file, line and column") {
    CHECK(has(error_of("cluster {\n  name pve\n}\n"), "t.conf:2:3: expected 'key: value'"));
    CHECK(has(error_of("cluster {\n name: a\n"), "t.conf:1:1: section 'cluster' is never closed"));
    CHECK(has(error_of("}\n"), "t.conf:1:1: '}' closes no section"));
    CHECK(has(error_of("cluster {\n node {\n"), "t.conf:2:2: section 'node' inside section 'cluster'"));
    CHECK(has(error_of("name: x\n"), "t.conf:1:1: key 'name' outside a section"));
    CHECK(has(error_of("bogus stuff here\n"), "t.conf:1:1: expected"));
    CHECK(has(error_of("{\n"), "t.conf:1:1: expected 'NAME {'"));
}

TEST_CASE("unknown sections and keys are errors") {
    CHECK(has(error_of("bogus {\n}\n"), "t.conf:1:1: unknown section 'bogus'"));
    CHECK(has(error_of("bogus {\n}\n"), "(known: cluster, node, network, crypto, paths, tree, system, logging)"));
    CHECK(has(error_of(std::string(kMinimal) + "network {\n  prot: 1\n}\n"),
              "t.conf:9:3: network.prot: unknown key"));
}

TEST_CASE("cluster-wide settings left in conclave.conf name the command to use") {
    // One book: node list, votes, quorum options and ring timing live in the replicated state.
    CHECK(has(error_of("totem {\n}\n"), "t.conf:1:1: section 'totem' holds cluster-wide settings"));
    CHECK(has(error_of("totem {\n}\n"), "conclavectl totem set KEY VALUE"));
    CHECK(has(error_of("quorum {\n}\n"), "conclavectl quorum set KEY VALUE"));
    CHECK(has(error_of("nodelist {\n}\n"), "conclavectl node add NAME --id N"));
    CHECK(has(error_of("cluster {\n two_node: 1\n}\n"),
              "t.conf:2:2: cluster.two_node is cluster-wide: it lives in the replicated state"));
    CHECK(has(error_of("cluster {\n two_node: 1\n}\n"), "conclavectl quorum set two_node 1"));
    CHECK(has(error_of("node {\n votes: 2\n}\n"), "conclavectl votes NODE V"));
    CHECK(has(error_of("network {\n token: 3000\n}\n"), "conclavectl totem set token MS"));
}

TEST_CASE("duplicate keys and sections are errors") {
    CHECK(has(error_of("cluster {\n name: a\n name: b\n}\n"), "t.conf:3:2: cluster.name: duplicate key (first set at line 2)"));
    CHECK(has(error_of(std::string(kMinimal) + "cluster {\n}\n"), "t.conf:8:1: duplicate section 'cluster'"));
}

TEST_CASE("missing values and missing required keys") {
    CHECK(has(error_of("cluster {\n name:\n}\n"), "t.conf:2:7: cluster.name: missing value"));
    CHECK(has(error_of("cluster {\n name: a\n}\n"), "node.id: required key is missing"));
    CHECK(has(error_of("cluster {\n name: a\n}\nnode {\n id: 1\n}\n"), "t.conf:4:1: node.name: required key is missing"));
}

TEST_CASE("values are type- and range-checked") {
    auto net = [](const std::string& line) { return error_of(std::string(kMinimal) + "network {\n" + line + "\n}\n"); };
    CHECK(has(net("port: 0"), "t.conf:9:7: network.port: 0 is out of range (1-65535)"));
    CHECK(has(net("port: 65536"), "out of range"));
    CHECK(has(net("port: 99999999999999999999999"), "out of range"));
    CHECK(has(net("port: 54o5"), "'54o5' is not a whole number"));
    CHECK(has(net("port: -1"), "not a whole number"));
    CHECK(has(net("mtu: 100"), "network.mtu: 100 is out of range (576-65535)"));
    CHECK(has(net("transport: knet"), "network.transport: 'knet' is not a transport"));
    CHECK(has(net("bind_address: 10.0.0.256"), "is not an IPv4 or IPv6 address"));
    CHECK(has(net("bind_address: 239.1.1.1"), "is a multicast address"));
    CHECK(has(net("mcast_group: 10.0.0.1"), "is not a multicast address"));
    CHECK(has(net("interface: a-very-long-interface-name"), "at most 15"));
    CHECK(has(net("peers: 10.0.0.1"), "network.peers: only used with 'transport: unicast'"));
    CHECK(has(net("transport: unicast\npeers: 10.0.0.1\nmcast_group: 239.1.1.1"),
              "t.conf:11:14: network.mcast_group: only used with 'transport: multicast'"));
    CHECK(has(net("transport: unicast\npeers: 10.0.0.1\nttl: 2"), "network.ttl: only used with 'transport: multicast'"));
    CHECK(net("transport: unicast\npeers: 10.0.0.1\ninterface: eth0") == "");  // documented as ignored
    CHECK(has(net("transport: unicast\npeers: 10.0.0.1:0"), "port 0 is out of range"));
    CHECK(has(net("transport: unicast\npeers: host.example"), "is not an IP address"));
    CHECK(has(error_of("cluster {\n name: a b\n}\n"), "cluster.name: 'a b' is not a valid cluster name"));
    CHECK(has(error_of("cluster {\n name: a\n}\nnode {\n id: 0\n name: x\n}\n"), "node.id: 0 is out of range"));
    CHECK(has(error_of(std::string(kMinimal) + "crypto {\n cipher: rc4\n}\n"), "crypto.cipher: 'rc4' is not a cipher"));
    CHECK(has(error_of(std::string(kMinimal) + "crypto {\n key_file: relative/key\n}\n"), "is not an absolute path"));
    CHECK(has(error_of(std::string(kMinimal) + "logging {\n level: chatty\n}\n"), "is not a log level"));
    CHECK(has(error_of(std::string(kMinimal) + "tree {\n mount: maybe\n}\n"), "tree.mount: 'maybe' is not yes or no"));
    CHECK(has(error_of(std::string(kMinimal) + "system {\n sched_rr: fast\n}\n"), "system.sched_rr: 'fast' is not yes or no"));
    CHECK(has(error_of(std::string(kMinimal) + "tree {\n lock_timeout: 0\n}\n"), "tree.lock_timeout: 0 is out of range"));
    CHECK(has(error_of(std::string(kMinimal) + "system {\n token_linger: 5000\n}\n"),
              "system.token_linger: 5000 is out of range"));
    CHECK(has(error_of(std::string(kMinimal) + "tree {\n group: a;b\n}\n"), "is not a valid group name"));
    CHECK(has(error_of(std::string(kMinimal) + "paths {\n control_socket: /" + std::string(120, 's') + "\n}\n"),
              "paths.control_socket: socket paths are at most 107 characters"));
}

TEST_CASE("node names: 1 to 63 letters, digits and '-_.', not all digits") {
    auto node = [](const std::string& name) {
        return error_of("cluster {\n name: a\n}\nnode {\n id: 1\n name: " + name + "\n}\n");
    };
    CHECK(node("pve-1.lab_a") == "");
    CHECK(node(std::string(63, 'n')) == "");
    CHECK(node("2a") == "");
    CHECK(has(node("2"), "t.conf:6:8: node.name: '2' is not a valid node name (all digits: it would read as a node id"));
    CHECK(has(node("0042"), "all digits"));
    CHECK(has(node(std::string(64, 'n')), "node.name: node name is longer than 63 characters"));
    CHECK(has(node("a/b"), "node.name: 'a/b' is not a valid node name (letters, digits and '-_.' only)"));
    // The same rule, for the daemon's `node add`.
    CHECK(config::node_name_problem("pve1").empty());
    CHECK(has(config::node_name_problem("17"), "all digits"));
    CHECK_FALSE(config::node_name_problem("").empty());
    CHECK_FALSE(config::node_name_problem(std::string(64, 'a')).empty());
    CHECK(has(config::node_name_problem(std::string("a\0b", 3)), "'a\\0b' is not a valid node name"));
    CHECK(config::kMinNodeId == 1);
    CHECK(config::kMaxNodeId == 4294967294u);
    CHECK(has(error_of("cluster {\n name: a\n}\nnode {\n id: 4294967295\n name: n\n}\n"),
              "node.id: 4294967295 is out of range (1-4294967294)"));
}

TEST_CASE("every boolean key takes yes/no, true/false, on/off and 1/0") {
    for (const char* key : {"tree {\n mount: ", "system {\n sched_rr: "}) {
        for (const char* yes : {"yes", "true", "on", "1"}) {
            auto r = parse(std::string(kMinimal) + key + yes + "\n}\n", "t.conf");
            REQUIRE_MESSAGE(r.ok(), test::why(r));
            CHECK(r->mount);
            CHECK(r->sched_rr);
        }
        for (const char* no : {"no", "false", "off", "0"}) {
            auto r = parse(std::string(kMinimal) + key + no + "\n}\n", "t.conf");
            REQUIRE_MESSAGE(r.ok(), test::why(r));
            CHECK((!r->mount || !r->sched_rr));
        }
        CHECK(has(error_of(std::string(kMinimal) + key + "2\n}\n"),
                  "'2' is not yes or no (also accepted: true/false, on/off, 1/0)"));
    }
}

TEST_CASE("contradictions between keys are errors") {
    auto net = [](const std::string& body) { return error_of(std::string(kMinimal) + "network {\n" + body + "}\n"); };
    CHECK(has(net("transport: unicast\n"), "t.conf:9:12: network.peers: transport unicast needs"));
    CHECK(has(net("bind_address: fd00::1\n"), "are of different address families"));
    CHECK(has(net("transport: unicast\nbind_address: 10.0.0.1\npeers: fd00::2\n"), "different address families"));
    CHECK(has(error_of(std::string(kMinimal) + "crypto {\n key_file: /k\n next_key_file: /k\n}\n"), "same file as key_file"));
}

TEST_CASE("the tree may not be mounted over the state, the socket or the key") {
    auto paths = [](const std::string& body) { return error_of(std::string(kMinimal) + "paths {\n" + body + "}\n"); };
    CHECK(has(paths("state_dir: /srv/c\nmount_point: /srv/c\n"),
              "t.conf:10:14: paths.mount_point: /srv/c is the same path as paths.state_dir /srv/c: the tree"));
    CHECK(has(paths("state_dir: /srv/c/\nmount_point: /srv//c/.\n"), "is the same path as"));
    CHECK(has(paths("state_dir: /srv/c/state\nmount_point: /srv/c\n"),
              "paths.mount_point: /srv/c contains paths.state_dir /srv/c/state"));
    CHECK(has(paths("state_dir: /srv/c\nmount_point: /srv/c/tree\n"),
              "paths.mount_point: /srv/c/tree lies inside paths.state_dir /srv/c"));
    CHECK(has(paths("state_dir: /srv/x/../c\nmount_point: /srv/c/tree\n"), "lies inside"));
    CHECK(has(paths("mount_point: /\n"), "contains paths.state_dir /var/lib/conclave"));
    CHECK(has(paths("mount_point: /run/conclave\n"), "paths.mount_point: /run/conclave contains paths.control_socket"));
    CHECK(has(paths("control_socket: /etc/pve/cs.sock\n"), "t.conf:9:17: paths.mount_point: /etc/pve contains"));
    CHECK(has(paths("control_socket: /var/lib/conclave\n"), "paths.control_socket: /var/lib/conclave is the same"));
    CHECK(has(error_of(std::string(kMinimal) + "crypto {\n key_file: /etc/pve/priv/authkey\n}\n"),
              "paths.mount_point: /etc/pve contains crypto.key_file /etc/pve/priv/authkey"));
    CHECK(has(error_of(std::string(kMinimal) + "crypto {\n next_key_file: /etc/pve/k\n}\n"), "crypto.next_key_file"));
    // Component-wise, not by string prefix.
    CHECK(paths("state_dir: /srv/c\nmount_point: /srv/cc\n") == "");
    CHECK(paths("state_dir: /srv/cc\nmount_point: /srv/c\n") == "");
    CHECK(paths("control_socket: /etc/pve2.sock\n") == "");
    // Without the mount, the mount point is not used.
    CHECK(error_of(std::string(kMinimal) + "paths {\n mount_point: /var/lib/conclave\n}\ntree {\n mount: no\n}\n") == "");
}

TEST_CASE("a file that cannot be read says so") {
    auto r = config::load("/nonexistent/conclave.conf");
    REQUIRE_FALSE(r.ok());
    CHECK(has(r.error(), "/nonexistent/conclave.conf: cannot read the config file"));
}

TEST_CASE("a config that is a FIFO or a directory is refused at once, saying what it is") {
    test::TempDir d;
    std::string fifo = d.path + "/conffifo";
    REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
    // Without O_NONBLOCK this open waits for a writer forever.
    auto r = config::load(fifo);
    REQUIRE_FALSE(r.ok());
    CHECK(has(r.error(), fifo + ": is not a regular file"));
    r = config::load(d.path);
    REQUIRE_FALSE(r.ok());
    CHECK(has(r.error(), d.path + ": is a directory, not a config file"));
    std::string good = d.path + "/c.conf";
    std::ofstream(good) << kMinimal;
    r = config::load(good);
    REQUIRE_MESSAGE(r.ok(), test::why(r));
    CHECK(r->node_name == "n1");
}

TEST_CASE("binary junk is an error, not a crash") {
    std::string junk("\x01\x02\xff{\n\0\0:\n}", 11);
    CHECK_FALSE(error_of(junk).empty());
    CHECK_FALSE(error_of(std::string(2 << 20, 'x')).empty());
}

TEST_CASE("a NUL or control byte in a value is shown escaped, never cut short or raw") {
    std::string nul = "cluster {\n name: c\n}\nnode {\n id: 1" + std::string(1, '\0') + "junk\n name: n\n}\n";
    std::string e = error_of(nul);
    CHECK(has(e, "t.conf:5:6: node.id: '1\\0junk' is not a whole number"));
    CHECK(e.find('\0') == std::string::npos);
    std::string esc = error_of(std::string(kMinimal) + "crypto {\n cipher: a\x1b[2Jb\x7f\n}\n");
    CHECK(has(esc, "crypto.cipher: 'a\\x1b[2Jb\\x7f' is not a cipher"));
    CHECK(config::escape(config::escape(std::string("a\0\x01\\", 4))) == "a\\0\\x01\\");
}

TEST_CASE("an IPv6 peer ending in '::' has no port, bare or in brackets; an empty port is an error") {
    // fuzz_config: "[fd00::]" parsed, was formatted as "fd00::", and that was read as an
    // empty port after the last ':'.
    for (const char* peer : {"fd00::", "[fd00::]"}) {
        auto r = parse(std::string(kMinimal) + "network {\n transport: unicast\n peers: 10.0.0.2 " + peer + "\n}\n", "u");
        REQUIRE_MESSAGE(r.ok(), test::why(r));
        REQUIRE(r->peers.size() == 2);
        CHECK(r->peers[1].address == "fd00::");
        CHECK(r->peers[1].port == 0);
        auto again = parse(config::format(r.value()), "f");
        REQUIRE_MESSAGE(again.ok(), test::why(again));
        CHECK(config::format(again.value()) == config::format(r.value()));
    }
    auto net = [](const std::string& line) { return error_of(std::string(kMinimal) + "network {\n" + line + "\n}\n"); };
    CHECK(has(net("transport: unicast\npeers: 10.0.0.1:"), "port '' is not a whole number"));
    CHECK(has(net("transport: unicast\npeers: [fd00::1]:"), "port '' is not a whole number"));
}
