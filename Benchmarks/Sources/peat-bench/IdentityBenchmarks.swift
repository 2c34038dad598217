import Crypto
import Foundation
import PeatIdentity

/// Runs `body` repeatedly for about `seconds` and returns operations per second (best of 3 rounds).
func throughput(seconds: Double = 1.0, _ body: () -> Void) -> Double {
    let clock = ContinuousClock()
    var best = 0.0
    for _ in 0..<3 {
        var operations = 0
        let start = clock.now
        let end = start.advanced(by: .milliseconds(Int(seconds * 1000 / 3)))
        while clock.now < end {
            for _ in 0..<64 { body() }
            operations += 64
        }
        let elapsed = start.duration(to: clock.now)
        let secondsElapsed = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        best = max(best, Double(operations) / secondsElapsed)
    }
    return best
}

func report(_ workload: String, ours: Double, baseline: String, baselinePerSecond: Double) {
    let ratio = ours / baselinePerSecond
    emit(
        #"RESULT {"workload":"\#(workload)","ours_per_s":\#(Int(ours)),"baseline":"\#(baseline)","baseline_per_s":\#(Int(baselinePerSecond)),"ratio":\#((ratio * 1000).rounded() / 1000)}"#
    )
}

@inline(never) func blackHole<T>(_ value: T) { withExtendedLifetime(value) {} }

/// Identity derivation, signatures and the formation proof against swift-crypto.
enum IdentityBenchmarks {
    static func run() throws {
        let seed = Array("formation-shared-secret-from-k8s-secret".utf8)
        var counter = 0

        // Identity derivation: what a node does once at start-up, and what discovery may do per peer
        // to predict a peer's device key from its hostname.
        let oursDerive = throughput {
            counter &+= 1
            blackHole(DeviceKeypair.fromSeed(seed, context: "peat-mesh-\(counter & 1023)").deviceID)
        }
        let theirsDerive = throughput {
            counter &+= 1
            let derived = HKDF<SHA256>.deriveKey(
                inputKeyMaterial: SymmetricKey(data: seed), info: Data("peat-mesh-\(counter & 1023)".utf8), outputByteCount: 32)
            let key = try! derived.withUnsafeBytes { try Curve25519.Signing.PrivateKey(rawRepresentation: $0) }
            blackHole(SHA256.hash(data: key.publicKey.rawRepresentation).prefix(16))
        }
        report("identity_derive", ours: oursDerive, baseline: "swift-crypto", baselinePerSecond: theirsDerive)

        let keypair = DeviceKeypair.fromSeed(seed, context: "peat-mesh-0")
        let theirKey = try Curve25519.Signing.PrivateKey(rawRepresentation: keypair.rawRepresentation)
        let message = [UInt8](repeating: 0x5a, count: 256)
        let oursSign = throughput { blackHole(keypair.sign(message)) }
        let theirsSign = throughput { blackHole(try! theirKey.signature(for: message)) }
        report("ed25519_sign", ours: oursSign, baseline: "swift-crypto", baselinePerSecond: theirsSign)

        let signature = keypair.sign(message)
        let oursVerify = throughput { blackHole(keypair.publicKey.isValidSignature(signature, for: message)) }
        let theirsVerify = throughput { blackHole(theirKey.publicKey.isValidSignature(signature.rawRepresentation, for: message)) }
        report("ed25519_verify", ours: oursVerify, baseline: "swift-crypto", baselinePerSecond: theirsVerify)

        let formation = FormationKey(secret: seed)
        var transcript = MembershipTranscript()
        transcript.append("tls-exporter", [UInt8](repeating: 1, count: 32))
        transcript.append("initiator-key", [UInt8](repeating: 2, count: 32))
        transcript.append("responder-key", [UInt8](repeating: 3, count: 32))
        let oursProof = throughput {
            let proof = formation.membershipProof(for: .initiator, transcript: transcript)
            blackHole(try? formation.verifyMembershipProof(proof, from: .initiator, transcript: transcript))
        }
        let hmacKey = SymmetricKey(size: .bits256)
        let proofInput = Array("peat-membership-proof-v1".utf8) + [1] + transcript.bytes
        let theirsProof = throughput {
            let mac = HMAC<SHA256>.authenticationCode(for: proofInput, using: hmacKey)
            blackHole(HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: proofInput, using: hmacKey))
        }
        report("formation_proof", ours: oursProof, baseline: "swift-crypto HMAC", baselinePerSecond: theirsProof)
    }
}
