"""The chart's Kafka values (docs/fleet.md): off by default; on, the operator's environment
names the broker, the tenant and the buffer, and TLS/SASL files come from a mounted Secret
the operator's own config reads back; the schema refuses a tenant that cannot be a topic name."""

from __future__ import annotations

from aisre.operator.config import OperatorConfig
from chart_render import CHART, container, env_of, helm, one, render


def test_kafka_is_off_by_default() -> None:
    env = env_of(render())
    assert not any(name.startswith("AISRE_KAFKA") for name in env) and OperatorConfig.from_env(env).kafka is None


def test_kafka_values_reach_the_operator_with_credentials_from_a_mounted_secret(tmp_path) -> None:
    objects = render("kafka.bootstrap=kafka.kafka:9093", "kafka.securityProtocol=SASL_SSL",
                     "kafka.sasl.mechanism=SCRAM-SHA-512", "kafka.sasl.username=aisre", "kafka.secret.name=kafka-auth",
                     "kafka.secret.passwordKey=password", "kafka.secret.caKey=ca.crt", "kafka.buffer=500",
                     "kafka.consumeExternal=true")
    env, main = env_of(objects), container(objects)
    assert env["AISRE_KAFKA_BOOTSTRAP"] == "kafka.kafka:9093" and env["AISRE_FLEET_TENANT"] == "aisre"  # the release
    assert env["AISRE_KAFKA_SASL_PASSWORD_FILE"] == "/etc/aisre/kafka/password"
    assert env["AISRE_KAFKA_CA_FILE"] == "/etc/aisre/kafka/ca.crt" and "AISRE_KAFKA_CERT_FILE" not in env
    assert any(m["mountPath"] == "/etc/aisre/kafka" and m["readOnly"] for m in main["volumeMounts"])
    [volume] = [v for v in one(objects, "Deployment", "aisre")["spec"]["template"]["spec"]["volumes"]
                if v["name"] == "kafka-credentials"]
    assert volume["secret"]["secretName"] == "kafka-auth"
    password = tmp_path / "password"
    password.write_text("s3cret\n")
    config = OperatorConfig.from_env({**env, "AISRE_KAFKA_SASL_PASSWORD_FILE": str(password)})
    assert config.kafka is not None
    assert (config.kafka.tenant, config.kafka.buffer, config.kafka.consume_external) == ("aisre", 500, True)
    client = config.kafka.client_config()
    assert client["security.protocol"] == "sasl_ssl" and client["sasl.mechanism"] == "SCRAM-SHA-512"
    assert client["sasl.password"] == "s3cret" and client["ssl.ca.location"] == "/etc/aisre/kafka/ca.crt"
    named = env_of(render("kafka.bootstrap=k:9092", "kafka.tenant=eu-prod-1"))
    assert named["AISRE_FLEET_TENANT"] == "eu-prod-1" and "AISRE_KAFKA_SASL_MECHANISM" not in named


def test_the_schema_refuses_a_tenant_that_is_no_topic_name_part() -> None:
    for value, where in (("kafka.tenant=EU.prod", "/kafka/tenant"), ("kafka.securityProtocol=TLS", "/kafka/securityProtocol"),
                         ("kafka.buffer=0", "/kafka/buffer")):
        done = helm("template", "aisre", str(CHART), "--set", value, check=False)
        assert done.returncode != 0 and where in done.stderr, done.stderr
