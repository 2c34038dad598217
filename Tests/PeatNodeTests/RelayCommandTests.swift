import Foundation
import PeatIdentity
import PeatTestSupport
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `relay-key` and `relay`, run as separate processes as operators run them.
@Suite(.timeLimit(.minutes(1)))
struct RelayCommandTests {
    static let secret = IdentityCommandTests.secret

    @Test func relayKeyPrintsTheOneWayAccessKeyOfTheSecret() throws {
        let result = try NodeProcess.run(["relay-key"], environment: ["PEAT_FORMATION_SECRET": Self.secret])
        #expect(result.status == 0)
        let expected = RelayAccessKey(secret: try FormationSecret(base64: Self.secret)).base64EncodedString()
        #expect(result.stdout == expected + "\n")
        #expect(!result.stdout.contains(Self.secret))
        let refused = try NodeProcess.run(["relay-key"], environment: [:])
        #expect(refused.status == 78 && refused.stderr.contains("PEAT_FORMATION_SECRET"))
    }

    @Test func theRelayRefusesTheFormationSecretAndNeedsItsKey() throws {
        let key = RelayAccessKey(secret: try FormationSecret(base64: Self.secret)).base64EncodedString()
        let withSecret = try NodeProcess.run(["relay"], environment: ["PEAT_FORMATION_SECRET": Self.secret, "PEAT_RELAY_ACCESS_KEY": key])
        #expect(withSecret.status == 78)
        #expect(withSecret.stderr.contains("PEAT_FORMATION_SECRET") && !withSecret.stderr.contains(Self.secret))
        let withoutKey = try NodeProcess.run(["relay"], environment: [:])
        #expect(withoutKey.status == 78 && withoutKey.stderr.contains("PEAT_RELAY_ACCESS_KEY"))
        let badKey = try NodeProcess.run(["relay"], environment: ["PEAT_RELAY_ACCESS_KEY": "c2hvcnQ="])
        #expect(badKey.status == 78 && badKey.stderr.contains("PEAT_RELAY_ACCESS_KEY") && !badKey.stderr.contains("c2hvcnQ="))
        let halfTLS = try NodeProcess.run(["relay"], environment: ["PEAT_RELAY_ACCESS_KEY": key, "PEAT_RELAY_TLS_CERT": "/nonexistent"])
        #expect(halfTLS.status == 78 && halfTLS.stderr.contains("PEAT_RELAY_TLS_CERT/PEAT_RELAY_TLS_KEY"))
    }

    @Test func theRelayServesProbesAndStopsOnSigterm() async throws {
        let key = RelayAccessKey(secret: try FormationSecret(base64: Self.secret)).base64EncodedString()
        let relay = try NodeProcess(
            arguments: ["relay"],
            environment: ["PEAT_RELAY_ACCESS_KEY": key, "PEAT_BIND_HOST": "127.0.0.1", "PEAT_RELAY_PORT": "0", "PEAT_BROKER_PORT": "0"])
        // The two listeners start together: either line may come first.
        #expect(try relay.waitForOutput(containing: "Relay listening").contains("protocol=peat-relay/1"))
        let output = try relay.waitForOutput(containing: "Health endpoints listening")
        #expect(!output.contains(key), "the access key is never logged")
        let port = try #require(RunCommandTests.port(in: output, line: "Health endpoints listening"))
        let ready = try await NodeBrokerTests.get("http://127.0.0.1:\(port)/api/v1/ready")
        #expect(ready.status == 200 && ready.json["ready"] as? Bool == true)
        let health = try await NodeBrokerTests.get("http://127.0.0.1:\(port)/api/v1/health")
        #expect(health.status == 200 && health.json["status"] as? String == "healthy")
        let (metrics, _) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/metrics")!)
        #expect(String(decoding: metrics, as: UTF8.self).contains("peat_relay_clients"))
        let (_, missing) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/api/v1/documents/x")!)
        #expect((missing as? HTTPURLResponse)?.statusCode == 404, "a relay has no document API")
        relay.signal(SIGTERM)
        #expect(try relay.finish().status == 0)
    }
}
