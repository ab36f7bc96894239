// Runs Neo4j (Community, from the published test harness) in this JVM for aisre's tests,
// demo and benchmark: Bolt only, on 127.0.0.1 only, until SIGTERM. Started by hack/neo4j.sh.
//
// Usage: java -cp 'lib/*:.' Launcher DIR PORT
//   DIR/data  the databases, kept across restarts
//   DIR/logs  Neo4j's debug.log
//   DIR/run   the harness's own scratch folder (it deletes its subfolder on a clean stop)
// AISRE_NEO4J_PASSWORD (environment, so it stays out of `ps`): the password of user neo4j;
// empty turns authentication off.
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.BoltConnectorInternalSettings;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.graphdb.QueryExecutionException;
import org.neo4j.harness.Neo4j;
import org.neo4j.harness.Neo4jBuilders;

public final class Launcher {
    public static void main(String[] args) throws InterruptedException {
        Path dir = Path.of(args[0]).toAbsolutePath();
        int port = Integer.parseInt(args[1]);
        String password = System.getenv().getOrDefault("AISRE_NEO4J_PASSWORD", "");
        Neo4j neo4j;
        try {
            neo4j = start(dir, port, password);
        } catch (RuntimeException e) {
            // Neo4j's own threads could keep a half-started JVM alive: fail the start instead.
            e.printStackTrace();
            Throwable cause = e;
            while (cause.getCause() != null) cause = cause.getCause();
            System.err.println("neo4j failed to start: " + cause.getMessage()); // last line: hack/neo4j.sh shows it
            System.exit(1);
            return;
        }
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            neo4j.close(); // a clean shutdown checkpoints, so the next start needs no recovery
            System.out.println("neo4j stopped");
            stopped.countDown();
        }));
        System.out.println("neo4j ready bolt://127.0.0.1:" + port + " auth=" + (password.isEmpty() ? "none" : "basic"));
        System.out.flush();
        stopped.await();
    }

    private static Neo4j start(Path dir, int port, String password) {
        SocketAddress bolt = new SocketAddress("127.0.0.1", port);
        Neo4j neo4j = Neo4jBuilders.newInProcessBuilder(dir.resolve("run"))
                // No HTTP/HTTPS: the project speaks Bolt only, and fewer ports to keep private.
                .withDisabledServer()
                // Anything that would listen falls back to loopback, never 0.0.0.0.
                .withConfig(GraphDatabaseSettings.default_listen_address, new SocketAddress("127.0.0.1"))
                .withConfig(GraphDatabaseSettings.default_advertised_address, new SocketAddress("127.0.0.1"))
                .withConfig(BoltConnector.enabled, true)
                .withConfig(BoltConnector.listen_address, bolt)
                .withConfig(BoltConnector.advertised_address, bolt)
                // The server-side routing connector (default :7688) is for clusters; a single
                // server does not need it, and it would take aisre's default port.
                .withConfig(GraphDatabaseSettings.routing_enabled, false)
                // The harness would keep data in its scratch folder and delete it on stop.
                .withConfig(GraphDatabaseSettings.data_directory, dir.resolve("data"))
                .withConfig(GraphDatabaseSettings.logs_directory, dir.resolve("logs"))
                .withConfig(GraphDatabaseSettings.pagecache_memory, 64L << 20)
                .withConfig(GraphDatabaseSettings.udc_enabled, false)
                .withConfig(GraphDatabaseSettings.auth_enabled, !password.isEmpty())
                // Bolt waits 5 s + 5 s on shutdown for connections and threads, after the
                // databases are already checkpointed and closed: `stop` took 11 s for nothing.
                .withConfig(BoltConnectorInternalSettings.connection_shutdown_wait_time, Duration.ofSeconds(1))
                .withConfig(BoltConnectorInternalSettings.thread_pool_shutdown_wait_time, Duration.ofSeconds(1))
                .build();
        try {
            if (!password.isEmpty()) setPassword(neo4j, password);
        } catch (RuntimeException e) {
            neo4j.close();
            throw e;
        }
        return neo4j;
    }

    // The embedded API is not subject to auth: set the password on every start, so a kept
    // database follows AISRE_NEO4J_PASSWORD and never asks the client for a change.
    private static void setPassword(Neo4j neo4j, String password) {
        try {
            neo4j.databaseManagementService()
                    .database("system")
                    .executeTransactionally(
                            "ALTER USER neo4j SET PASSWORD $password CHANGE NOT REQUIRED",
                            Map.of("password", password));
        } catch (QueryExecutionException e) {
            // Neo4j refuses to "change" a password to itself: it is already the right one.
            if (!String.valueOf(e.getMessage()).contains("Old password and new password cannot be the same")) {
                throw e;
            }
        }
    }
}
