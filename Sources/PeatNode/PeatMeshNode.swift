import ArgumentParser
import Logging
import PeatIdentity

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `peat-mesh-node`: a mesh node configured by environment variables (README.md, "Configuration").
@main
struct PeatMeshNode: AsyncParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "peat-mesh-node",
        abstract: "A peat-mesh node: joins the formation and serves the broker API.",
        discussion: "Configured by environment variables (PEAT_FORMATION_SECRET is required); see README.md.",
        version: version,
        subcommands: [Run.self, Identity.self, GenerateSecret.self, Relay.self, RelayKey.self],
        defaultSubcommand: Run.self
    )

    /// Exit status for a configuration the node refuses (EX_CONFIG).
    static let configurationExitCode: Int32 = 78

    /// Prints the one line that explains a refused configuration, then exits.
    static func refuse(_ error: ConfigurationError) -> ExitCode {
        let line = "peat-mesh-node: invalid configuration: \(error.description)\n"
        let bytes = Array(line.utf8)
        _ = bytes.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress!, $0.count) }
        return ExitCode(configurationExitCode)
    }

    /// The identity the environment gives (`PEAT_FORMATION_SECRET`, `HOSTNAME`, `PEAT_IDENTITY_CONTEXT`),
    /// or the exit that explains why it gives none.
    static func identity() throws -> IdentityConfiguration {
        do {
            return try IdentityConfiguration(environment: processEnvironment())
        } catch {
            throw refuse(error)
        }
    }

    /// The environment of this process.
    static func processEnvironment() -> Environment {
        Environment.process()
    }
}

extension PeatMeshNode {
    /// Runs the node until SIGTERM or SIGINT (the default command).
    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the node until SIGTERM or SIGINT (the default).")

        func run() async throws {
            let environment = PeatMeshNode.processEnvironment()
            let configuration: NodeConfiguration
            do {
                configuration = try NodeConfiguration(environment: environment)
            } catch {
                throw PeatMeshNode.refuse(error)
            }
            let status = await NodeRunner(configuration: configuration, environment: environment).run()
            if status != 0 { throw ExitCode(status) }
        }
    }

    /// Prints this node's identity for the current environment and exits.
    struct Identity: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print node_id=<context> device_id=<32 hex> for the current environment.",
            discussion: "Reads PEAT_FORMATION_SECRET, HOSTNAME and PEAT_IDENTITY_CONTEXT, as the node does.")

        func run() throws {
            let identity = try PeatMeshNode.identity()
            print("node_id=\(identity.context) device_id=\(identity.deviceKeypair().deviceID)")
        }
    }

    /// Runs a relay for nodes that cannot reach each other.
    struct Relay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a relay: members that cannot reach each other sync through it, end-to-end encrypted.",
            discussion: """
                Reads PEAT_RELAY_ACCESS_KEY (from `peat-mesh-node relay-key`; never PEAT_FORMATION_SECRET, which it \
                refuses), PEAT_BIND_HOST, PEAT_RELAY_PORT (3340), PEAT_BROKER_PORT (8081: health, readiness, metrics), \
                PEAT_RELAY_TLS_CERT / PEAT_RELAY_TLS_KEY (default: a self-signed certificate).
                """)

        func run() async throws {
            let configuration: RelayConfiguration
            do {
                configuration = try RelayConfiguration(environment: PeatMeshNode.processEnvironment())
            } catch {
                throw PeatMeshNode.refuse(error)
            }
            let status = await RelayRunner(configuration: configuration).run()
            if status != 0 { throw ExitCode(status) }
        }
    }

    /// Prints the relay access key of the formation.
    struct RelayKey: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "relay-key",
            abstract: "Print the formation's relay access key (for a relay's PEAT_RELAY_ACCESS_KEY), derived from PEAT_FORMATION_SECRET.",
            discussion: "A one-way derivation: the key admits members to a relay and reveals neither the secret nor any device or formation key.")

        func run() throws {
            let identity = try PeatMeshNode.identity()
            print(RelayAccessKey(secret: identity.secret).base64EncodedString())
        }
    }

    /// Prints a new random formation secret.
    struct GenerateSecret: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "generate-secret",
            abstract: "Print a new random 32-byte formation secret, base64-encoded, for PEAT_FORMATION_SECRET.")

        func run() throws {
            print(FormationSecret.generate().base64EncodedString())
        }
    }
}
