import HTTP1

/// Least privilege: the calls a deployment may make (`--allow 'GET /payments/*'`).
///
/// A rule is a method (or `*`) and a path pattern whose segments are literal,
/// `*` (exactly one segment) or a final `**` (one or more segments). Both
/// are matched exactly as written, case included (methods are case-sensitive
/// tokens, RFC 9110, and so are the API's paths), against the request's
/// canonical path (`CanonicalPath`: repeated slashes merged, escaped
/// unreserved characters decoded). Paths that servers could read as another
/// path (dot segments, encoded separators) are refused before they get here,
/// so no spelling of a path can match a rule that the upstream would read as
/// another path.
public struct AllowList: Sendable {
    public struct Rule: Sendable, CustomStringConvertible {
        let method: [UInt8]?  // nil: any
        let segments: [Pattern]
        public let description: String
    }

    enum Pattern: Sendable, Equatable {
        case literal([UInt8])
        case one
        case rest
    }

    public let rules: [Rule]

    public var isEmpty: Bool { rules.isEmpty }

    public struct InvalidRule: Error, CustomStringConvertible {
        public let description: String
    }

    public init(_ specs: [String]) throws {
        rules = try specs.map(Self.parse)
    }

    static func parse(_ spec: String) throws -> Rule {
        let parts = spec.split(separator: " ", omittingEmptySubsequences: true)
        guard parts.count == 2 else {
            throw InvalidRule(description: "allow rule '\(spec)' must be 'METHOD /path/pattern'")
        }
        let methodText = String(parts[0])
        guard methodText == "*" || methodText.utf8.allSatisfy({ ASCII.isTokenChar[Int($0)] }) else {
            throw InvalidRule(description: "allow rule '\(spec)': invalid method")
        }
        // A lower-case method matches nothing the API serves: most likely a typo.
        guard methodText == methodText.uppercased() else {
            throw InvalidRule(
                description: "allow rule '\(spec)': methods are case-sensitive; write '\(methodText.uppercased())'")
        }
        let pathText = String(parts[1])
        guard pathText.hasPrefix("/") else {
            throw InvalidRule(description: "allow rule '\(spec)': the path must start with /")
        }
        let pieces = pathText.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
        var segments: [Pattern] = []
        for (n, piece) in pieces.enumerated() {
            switch piece {
            case "*": segments.append(.one)
            case "**":
                guard n == pieces.count - 1 else {
                    throw InvalidRule(description: "allow rule '\(spec)': ** may only end a pattern")
                }
                segments.append(.rest)
            default:
                if piece.isEmpty && n != pieces.count - 1 {
                    throw InvalidRule(description: "allow rule '\(spec)': empty path segment")
                }
                // In the form requests are matched in, and never one the
                // proxy refuses (a dot segment, an encoded separator, ...).
                let literal = "/" + piece
                var canonical = Array(literal.utf8)
                switch CanonicalPath.of(canonical[...]) {
                case .asSent: break
                case .rewritten(let bytes): canonical = bytes
                case .refused(let why):
                    throw InvalidRule(description: "allow rule '\(spec)': '\(piece)' is not a valid segment (\(why.message))")
                }
                if piece.contains("*") {
                    throw InvalidRule(description: "allow rule '\(spec)': '\(piece)' is not a valid segment")
                }
                segments.append(.literal(Array(canonical.dropFirst())))
            }
        }
        return Rule(
            method: methodText == "*" ? nil : Array(methodText.utf8), segments: segments,
            description: "\(methodText) \(pathText)")
    }

    /// Whether a rule allows `method` on the canonical path `path`. Walks
    /// the path's segments in place: nothing is allocated.
    func allows(method: ArraySlice<UInt8>, canonicalPath path: ArraySlice<UInt8>) -> Bool {
        if rules.isEmpty { return true }
        let segments = path.dropFirst()  // the leading `/`
        return rules.contains { rule in
            if let m = rule.method, !method.elementsEqual(m) { return false }
            return Self.match(rule.segments[...], segments)
        }
    }

    /// `path`: the rest of the path after a `/` (so one segment at least,
    /// maybe empty).
    private static func match(_ pattern: ArraySlice<Pattern>, _ path: ArraySlice<UInt8>?) -> Bool {
        guard let first = pattern.first else { return path == nil }
        guard let path else { return false }
        let end = path.firstIndex(of: ASCII.slash) ?? path.endIndex
        let segment = path[..<end]
        let rest = end < path.endIndex ? path[(end + 1)...] : nil
        switch first {
        case .rest:
            // One or more segments, none empty (no trailing slash).
            return !path.isEmpty && path.last != ASCII.slash
        case .one:
            guard !segment.isEmpty else { return false }
            return match(pattern.dropFirst(), rest)
        case .literal(let literal):
            guard segment.elementsEqual(literal) else { return false }
            return match(pattern.dropFirst(), rest)
        }
    }
}
