import PeatIdentity

/// The part of the configuration that decides who this node is.
///
/// - `PEAT_FORMATION_SECRET` (required): standard padded base64, at least 16 decoded bytes.
/// - `HOSTNAME` (default `peat-mesh-0`): the node ID (in Kubernetes, the pod name).
/// - `PEAT_IDENTITY_CONTEXT` (optional): replaces `HOSTNAME` as the key-derivation context, so two
///   clusters that share a secret and StatefulSet name get distinct device keys.
struct IdentityConfiguration: Sendable {
    static let defaultHostname = "peat-mesh-0"

    let secret: FormationSecret
    /// The node ID: `HOSTNAME`.
    let nodeID: String
    /// The key-derivation context: `PEAT_IDENTITY_CONTEXT`, else `HOSTNAME`.
    let context: String

    init(environment: Environment) throws(ConfigurationError) {
        guard let text = environment["PEAT_FORMATION_SECRET"] else {
            throw ConfigurationError(
                variable: "PEAT_FORMATION_SECRET",
                message:
                    "not set; it is required: the formation's shared secret, standard base64 of at least \(FormationSecret.minimumByteCount) bytes (generate one with `peat-mesh-node generate-secret`)"
            )
        }
        do {
            secret = try FormationSecret(base64: text)
        } catch {
            // The identity error's message describes the problem without quoting the secret.
            throw ConfigurationError(variable: "PEAT_FORMATION_SECRET", message: error.message)
        }
        nodeID = environment["HOSTNAME"] ?? Self.defaultHostname
        context = environment["PEAT_IDENTITY_CONTEXT"] ?? nodeID
    }

    /// This node's device key pair: derived from the secret and the context.
    func deviceKeypair() -> DeviceKeypair {
        secret.deviceKeypair(context: context)
    }
}
