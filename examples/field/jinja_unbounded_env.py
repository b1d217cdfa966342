"""A template service that renders per-tenant templates. Its Environment was
configured with cache_size=-1 ("never evict"), and every tenant gets a
template name of its own: jinja2's template cache grows without end."""
import jinja2

_tenant = [0]
env = jinja2.Environment(
    loader=jinja2.FunctionLoader(lambda name: "Hello {{ user }} from %s" % name),
    cache_size=-1,
)


def step():
    _tenant[0] += 1
    env.get_template("tenant-%d.html" % _tenant[0]).render(user="ada")
