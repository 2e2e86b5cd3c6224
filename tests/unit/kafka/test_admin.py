"""The topics the app creates: partitions and replicas from the settings."""
from stream.kafka.admin import missing_topics
from stream.settings import Settings
from stream.worker.app import build_app


def test_only_missing_topics_are_created_with_the_replicas_asked():
    made = missing_topics(["a", "c"], ("a", "b", "c", "d", "b"), partitions=8, replication=3)
    assert [(t.name, t.num_partitions, t.replication_factor) for t in made] == [("b", 8, 3), ("d", 8, 3)]
    assert [t.replication_factor for t in missing_topics([], ("x",), 4)] == [1]  # one broker: the default


def test_faust_creates_its_topics_with_the_replication_factor_of_the_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMBERSTREAM_TOPIC_REPLICATION_FACTOR", "3")
    settings = Settings(_env_file=None, state_dir=tmp_path)
    app, _ = build_app(settings)
    assert settings.topic_replication_factor == 3
    assert app.conf.topic_replication_factor == 3
    # Faust declares a topic of no replicas of its own (the members changelog) with the app's.
    assert app.tables["members"].changelog_topic.replicas is None
