"""The same template service with jinja2's default cache (400 templates,
least recently used evicted): it fills during the run and stays bounded."""
import jinja2

_tenant = [0]
env = jinja2.Environment(
    loader=jinja2.FunctionLoader(lambda name: "Hello {{ user }} from %s" % name))


def step():
    _tenant[0] += 1
    env.get_template("tenant-%d.html" % _tenant[0]).render(user="ada")
