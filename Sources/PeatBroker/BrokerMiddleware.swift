import Foundation
import Hummingbird
import Logging
import Prometheus

/// Turns every failure into `{"error": "...", "status": N}` (unknown routes included), records
/// request metrics, and never lets an unexpected error escape as a crash or an HTML page.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: BrokerMetrics
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        let response: Response
        do {
            response = try await next(request, context)
        } catch let error as BrokerError {
            var headers: HTTPFields = [:]
            if error.code == .unauthorized { headers[.wwwAuthenticate] = "Bearer" }
            response = Self.errorResponse(status: error.code.status, message: error.message, headers: headers)
        } catch let error as HTTPError where error.status == .notFound && error.body == nil {
            // No route: a known path with another method is 405 (with Allow), anything else 404.
            let allowed = Broker.allowedMethods(for: request.uri.path)
            if allowed.isEmpty {
                response = Self.errorResponse(status: 404, message: Self.defaultMessage(404, request: request))
            } else {
                let names = allowed.map(\.rawValue).joined(separator: ", ")
                response = Self.errorResponse(
                    status: 405, message: "\(request.method.rawValue) is not allowed here; allowed: \(names)", headers: [.allow: names])
            }
        } catch let error as HTTPError {
            let message = error.body ?? Self.defaultMessage(Int(error.status.code), request: request)
            response = Self.errorResponse(status: Int(error.status.code), message: message)
        } catch let error as any HTTPResponseError {
            response = Self.errorResponse(status: Int(error.status.code), message: Self.defaultMessage(Int(error.status.code), request: request))
        } catch {
            logger.warning("Request failed", metadata: ["path": "\(request.uri.path)", "reason": "\(error)"])
            response = Self.errorResponse(status: 500, message: "internal error")
        }
        let elapsed = start.duration(to: .now)
        let route = context.endpointPath ?? "unmatched"
        metrics.request(
            route: route, method: request.method.rawValue, status: Int(response.status.code),
            seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
        return response
    }

    static func defaultMessage(_ status: Int, request: Request) -> String {
        switch status {
        case 404: "no route \(request.method.rawValue) \(request.uri.path)"
        case 413: "request body too large"
        default: HTTPResponse.Status(code: status).reasonPhrase
        }
    }

    static func errorResponse(status: Int, message: String, headers: HTTPFields = [:]) -> Response {
        let body = JSONValue.object(["error": .string(message), "status": .int(Int64(status))])
        return jsonResponse(body, status: HTTPResponse.Status(code: status), headers: headers)
    }
}

/// Runs `operation` (a call into the state) with a deadline: a call that takes longer is
/// cancelled and answered with 504, so a stuck store or mesh never holds a request forever.
func withDeadline<R: Sendable>(_ timeout: Duration, _ operation: @escaping @Sendable () async throws -> R) async throws -> R {
    try await withThrowingTaskGroup(of: R?.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let result = first else {
            throw BrokerError(code: .timeout, message: "the request took longer than \(timeout)")
        }
        return result
    }
}

/// A JSON response from a `JSONValue` (the fast path for documents and errors).
func jsonResponse(_ value: JSONValue, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
    var fields = headers
    fields[.contentType] = "application/json"
    return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: value.serialized())))
}

/// Encodes a JSON body with sorted keys.
func jsonResponse(_ value: some Encodable, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    let data = (try? encoder.encode(value)) ?? Data(#"{"error":"response encoding failed","status":500}"#.utf8)
    var fields = headers
    fields[.contentType] = "application/json"
    return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: data)))
}

/// `GET /api/v1/health`: the process is up (the node's and the relay's answer).
func healthResponse(nodeID: String) -> Response {
    jsonResponse(JSONValue.object(["status": .string("healthy"), "node_id": .string(nodeID)]))
}

/// `GET /metrics`: the Prometheus text exposition of `registry`.
func metricsResponse(_ registry: PrometheusCollectorRegistry) -> Response {
    Response(
        status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
        body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
}
